"""The decision loop without a controller: trust, hysteresis, modes, faults, the decision log."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import numpy as np
import pytest

from agents.baselines import make_policy
from controller.decisions import DecisionLog, DecisionLoop, HealthConfig, Mode, Rollout
from sim.decision import Decision
from sim.loads import link_loads
from sim.optimal import path_optimal
from sim.paths import PathSet
from sim.state import NetworkState
from topologies.catalog import load_topology

NOW = 1000.0


@pytest.fixture(scope="module")
def path_set():
    return PathSet.from_graph(load_topology("abilene"), k=4)


def make_state(path_set, scale=1.0, updated_at=NOW, down=()):
    graph = load_topology("abilene")
    state = NetworkState(graph, path_set, down_links=set(down), updated_at=updated_at)
    rng = np.random.default_rng(1)
    matrix = rng.uniform(50, 150, (path_set.n_nodes, path_set.n_nodes)) * scale
    np.fill_diagonal(matrix, 0)
    state.push_matrix(matrix)
    return state


@dataclass
class Encoding:
    scale_reference: float


class Agent:
    """A real policy with a chosen behaviour (the loop cannot tell it from a trained model)."""

    name = "test-agent"

    def __init__(self, behaviour="optimal", reference=None):
        self.behaviour = behaviour
        if reference is not None:
            self.encoding = Encoding(reference)

    def decide(self, state):
        ps = state.path_set
        if self.behaviour == "raise":
            raise RuntimeError("model exploded")
        if self.behaviour == "slow":
            time.sleep(1.0)
        if self.behaviour == "down_link":
            dead = ~ps.live_paths(state.down_links)
            return Decision(ps, np.where(dead, 1.0, 1e-9))
        if self.behaviour == "worse":
            return make_policy("sp", ps).decide(state)
        if self.behaviour == "invcap":  # leaves some links unused
            return make_policy("invcap", ps).decide(state)
        if self.behaviour == "uniform":  # fine on an idle network, bad on a loaded one
            return Decision(ps, np.ones(ps.n_paths))
        return path_optimal(ps, state.last_matrix, down_links=state.down_links)[1]


def loop_with(path_set, agent, mode=Mode.ACTIVE, **health):
    """A loop with a budget the LP agent (~10 ms) meets even on a loaded 2-core machine; the
    "slow" agent (1 s) never does."""
    loop = DecisionLoop(make_policy("invcap", path_set), poll_interval_s=2.0, mode=mode,
                        health=HealthConfig(**{"budget_ms": 500, **health}))
    loop.set_agent(agent, "test-model")
    return loop


DOWN = {("ATLAng", "HSTNng"), ("HSTNng", "ATLAng")}


def trusted_loop_with_a_link_down(path_set, agent, **health):
    """An active loop whose agent has earned trust, on a state with one link down."""
    loop = loop_with(path_set, agent, **health)
    state = make_state(path_set, down=DOWN)
    for _ in range(3):
        loop.decide(state, NOW)
    assert loop.source == "agent"
    return loop, state


def test_agent_earns_trust_then_its_decision_is_installed(path_set):
    loop = loop_with(path_set, Agent())
    state = make_state(path_set)
    sources = [loop.decide(state, NOW)[1].source for _ in range(4)]
    assert sources == ["fallback", "fallback", "agent", "agent"]  # trusted after 3 healthy
    decision, record = loop.decide(state, NOW)
    assert record.predicted_mlu["agent"] < record.predicted_mlu["fallback"]
    assert record.differ and record.trusted and record.reasons == []


def test_shadow_mode_installs_the_fallback_but_judges_the_agent(path_set):
    loop = loop_with(path_set, Agent(), mode=Mode.SHADOW)
    state = make_state(path_set)
    for _ in range(4):
        decision, record = loop.decide(state, NOW)
    fallback = make_policy("invcap", path_set).decide(state)
    assert record.source == "fallback" and record.trusted
    np.testing.assert_array_equal(decision.weights, fallback.weights)
    assert record.predicted_mlu["agent"] is not None


def test_while_it_earns_trust_the_fallback_record_says_so(path_set):
    loop = loop_with(path_set, Agent())
    state = make_state(path_set)
    actions = [loop.decide(state, NOW)[1].action for _ in range(3)]
    assert actions[:2] == [f"the agent is healthy and earns trust: {n} of 3 healthy decisions"
                           for n in (1, 2)]
    assert actions[2] is None  # the agent's own decision: nothing to explain


@pytest.mark.parametrize("behaviour, reason", [
    ("down_link", "malformed decision"),
    ("worse", "worse than the fallback"),
])
def test_a_finding_hands_over_to_the_fallback_in_the_same_interval(path_set, behaviour, reason):
    agent = Agent()
    loop, state = trusted_loop_with_a_link_down(path_set, agent)
    agent.behaviour = behaviour
    decision, record = loop.decide(state, NOW)
    assert record.source == "fallback" and not record.trusted
    assert any(reason in r for r in record.reasons), record.reasons
    assert not decision.validate(DOWN)  # the installed decision never uses the dead link
    agent.behaviour = "optimal"
    sources = [loop.decide(state, NOW)[1].source for _ in range(3)]
    assert sources == ["fallback", "fallback", "agent"]  # hysteresis: 3 healthy decisions


@pytest.mark.parametrize("behaviour, reason", [
    ("raise", "agent raised RuntimeError: model exploded"),
    ("slow", "slower than the 500 ms budget"),
])
def test_a_transient_fault_holds_the_agents_decision(path_set, behaviour, reason):
    agent = Agent()
    loop, state = trusted_loop_with_a_link_down(path_set, agent)
    last, _ = loop.decide(state, NOW + 2)
    seq = loop.log.records[-1].seq
    agent.behaviour = behaviour
    decision, record = loop.decide(state, NOW + 4)
    assert record.source == loop.source == "agent-held" and record.trusted
    assert record.reasons == [next(r for r in record.reasons if reason in r)]
    assert record.action.startswith(f"transient fault: holding the agent's decision of seq {seq} "
                                    "(made 2.0 s ago; predicted MLU ")
    np.testing.assert_array_equal(decision.weights, last.weights)
    assert record.predicted_mlu["held"] == pytest.approx(loop.log.records[-2].predicted_mlu["agent"])
    if behaviour == "slow":
        time.sleep(1.1)  # let the abandoned call finish
    agent.behaviour = "optimal"
    assert loop.decide(state, NOW + 6)[1].source == "agent"  # no hysteresis after a transient


def test_repeated_transient_faults_make_the_agent_untrusted(path_set):
    agent = Agent()
    loop, state = trusted_loop_with_a_link_down(path_set, agent, transient_limit=3)
    agent.behaviour = "raise"
    records = [loop.decide(state, NOW + 2 * i)[1] for i in (1, 2, 3)]
    assert [r.source for r in records] == ["agent-held", "agent-held", "fallback"]
    assert [r.transition for r in records] == [None, None, "untrusted"]
    assert records[2].reasons == ["agent raised RuntimeError: model exploded",
                                  "3 transient faults in a row (limit 3)"]
    agent.behaviour = "optimal"
    state = make_state(path_set, updated_at=NOW + 8, down=DOWN)
    assert [loop.decide(state, NOW + 8)[1].source for _ in range(3)] == [
        "fallback", "fallback", "agent"]


def test_transient_faults_in_a_row_are_counted_from_the_last_healthy_decision(path_set):
    agent = Agent()
    loop, state = trusted_loop_with_a_link_down(path_set, agent, transient_limit=2)
    for i in range(4):  # fault, healthy, fault, healthy: never two in a row
        agent.behaviour = "raise" if i % 2 == 0 else "optimal"
        assert loop.decide(state, NOW + i)[1].source == ("agent-held" if i % 2 == 0 else "agent")


def test_a_held_decision_expires_after_hold_intervals(path_set):
    agent = Agent()
    loop, state = trusted_loop_with_a_link_down(path_set, agent, hold_intervals=1.5)
    agent.behaviour = "raise"
    assert loop.decide(state, NOW + 3.0)[1].source == "agent-held"  # 1.5 intervals of 2 s
    _, record = loop.decide(state, NOW + 3.5)
    assert record.source == "fallback" and record.trusted  # not held, yet not untrusted
    assert record.action == ("transient fault: the fallback, not the agent's last decision "
                             "(seq 3 is 3.5 s old, more than 1.5 intervals)")


def test_a_decision_is_not_held_once_a_link_on_its_paths_changed(path_set):
    agent = Agent("invcap")  # leaves ATLAng-IPLSng unused
    loop = loop_with(path_set, agent)
    for _ in range(3):
        loop.decide(make_state(path_set), NOW)
    agent.behaviour = "raise"
    off_paths = {("ATLAng", "IPLSng"), ("IPLSng", "ATLAng")}
    _, record = loop.decide(make_state(path_set, down=off_paths), NOW + 2)
    assert record.source == "agent-held"
    decision, record = loop.decide(make_state(path_set, down=DOWN), NOW + 4)
    assert record.source == "fallback" and not decision.validate(DOWN)
    assert "link ATLAng->HSTNng on its paths changed since seq 3" in record.action


def test_a_decision_is_not_held_when_it_is_worse_than_the_fallback_on_the_newest_matrix(path_set):
    agent = Agent("uniform")  # on an idle network, no worse than the fallback (the MLU floor)
    loop = loop_with(path_set, agent)
    quiet = make_state(path_set, scale=0.01)
    assert [loop.decide(quiet, NOW)[1].source for _ in range(3)][-1] == "agent"
    agent.behaviour = "raise"
    _, record = loop.decide(make_state(path_set), NOW + 2)  # traffic is back
    assert record.source == "fallback"
    assert record.predicted_mlu["held"] > 3 * record.predicted_mlu["fallback"]
    assert "is worse than the fallback's" in record.action


def test_an_idle_network_is_not_drift_and_not_worse_than_the_fallback(path_set):
    loop = loop_with(path_set, Agent("worse", reference=100 * 132))
    for scale in (0.0, 0.01):  # no traffic; traffic the fallback routes at MLU 0.002
        _, record = loop.decide(make_state(path_set, scale=scale), NOW)
        assert record.reasons == [], (scale, record.reasons)
    agent, fallback = record.predicted_mlu["agent"], record.predicted_mlu["fallback"]
    assert agent > 1.5 * fallback and fallback < 0.01  # a relative margin alone would fire
    _, record = loop.decide(make_state(path_set, scale=0.001), NOW)
    assert record.reasons == []  # far below 1/10 of the reference, still idle: not drift
    _, record = loop.decide(make_state(path_set), NOW)
    assert any("worse than the fallback" in r for r in record.reasons)  # once it is loaded


def test_stale_statistics_and_drift_make_the_agent_untrusted(path_set):
    loop = loop_with(path_set, Agent(reference=100 * 132))
    state = make_state(path_set)
    for _ in range(3):
        loop.decide(state, NOW)
    assert loop.source == "agent"
    _, record = loop.decide(state, NOW + 7.0)  # 3.5 intervals without statistics
    assert "statistics older than 3 intervals" in record.reasons
    _, record = loop.decide(make_state(path_set, scale=20.0), NOW)
    assert any(r.startswith("input drift") for r in record.reasons)
    assert record.source == "fallback"


def test_a_busy_agent_is_not_called_twice(path_set):
    loop = loop_with(path_set, Agent("slow"))
    state = make_state(path_set)
    loop.decide(state, NOW)
    _, record = loop.decide(state, NOW)
    assert "previous agent decision still running" in record.reasons
    time.sleep(1.1)


def test_without_an_agent_the_fallback_decides(path_set):
    loop = DecisionLoop(make_policy("invcap", path_set), poll_interval_s=2.0, mode=Mode.ACTIVE)
    decision, record = loop.decide(make_state(path_set), NOW)
    assert record.source == "fallback" and record.predicted_mlu["agent"] is None


def test_log_is_bounded_and_appends_json_lines_with_measured_mlu(path_set, tmp_path):
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(size=3, path=path)
    loop = DecisionLoop(make_policy("invcap", path_set), poll_interval_s=2.0, log=log)
    loop.set_agent(Agent(), "m1")
    state = make_state(path_set)
    for i in range(5):
        loop.decide(state, NOW + i)
        log.measured(0.5 + i)
    assert [r["seq"] for r in log.latest(10)] == [5, 4, 3]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5]
    assert [line["measured_mlu"] for line in lines] == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert set(lines[0]["predicted_mlu"]) == {"fallback", "agent"}


@pytest.mark.parametrize("fault, reason, source", [
    ("raise", "injected fault", "agent-held"), ("sleep", "budget", "agent-held"),
    ("nan", "malformed decision", "fallback"), ("down_link", "malformed decision", "fallback"),
    ("drift", "input drift", "fallback"),
])
def test_injected_faults_are_caught_by_the_health_checks(path_set, tmp_path, fault, reason,
                                                         source):
    from controller.faults import FaultInjector

    control = tmp_path / "faults.json"
    agent = FaultInjector(Agent(reference=100 * 132), control)
    loop, state = trusted_loop_with_a_link_down(path_set, agent)
    control.write_text(json.dumps({"fault": fault, "seconds": 1.0}))
    decision, record = loop.decide(state, NOW)
    assert record.source == source and any(reason in r for r in record.reasons), record
    assert not decision.validate(DOWN)
    control.write_text("{}")
    if fault == "sleep":
        time.sleep(1.1)
    assert [loop.decide(state, NOW)[1].source for _ in range(3)][-1] == "agent"


@pytest.mark.parametrize("field, value, message", [
    ("transient_limit", 0, "transient_limit must be an integer >= 1, got 0"),
    ("recover_after", True, "recover_after must be an integer >= 1, got True"),
    ("hold_intervals", -1.0, "hold_intervals must be >= 0"),
    ("mlu_floor", -0.1, "mlu_floor must be >= 0"),
    ("idle_mlu", -0.1, "idle_mlu must be >= 0"),
])
def test_bad_health_settings_are_refused_with_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        HealthConfig(**{field: value})


# -- gradual activation ----------------------------------------------------------------------
def measured_as_installed(state, decision, factor=1.0):
    """The switches carried the installed decision as the fluid model says (x ``factor``)."""
    state.set_loads(link_loads(state.path_set, decision, state.last_matrix) * factor)


def test_a_rollout_blends_a_fraction_of_each_od_pair_toward_the_agent(path_set):
    loop, state = trusted_loop_with_a_link_down(path_set, Agent())
    loop.set_mode(Mode.ACTIVE, Rollout(fraction=0.25))
    decision, record = loop.decide(state, NOW)
    fallback = make_policy("invcap", path_set).decide(state)
    agent = Agent().decide(state)
    assert record.source == "blend" and record.fraction == 0.25
    np.testing.assert_allclose(decision.weights, 0.75 * fallback.weights + 0.25 * agent.weights)
    assert not decision.validate(DOWN)
    assert record.action == "rollout: 25% of the weight on the agent's split"
    assert record.predicted_mlu["agent"] <= record.predicted_mlu["blend"] \
        <= record.predicted_mlu["fallback"]


def test_a_canary_moves_only_the_od_pairs_of_the_chosen_ingress_switches(path_set):
    loop, state = trusted_loop_with_a_link_down(path_set, Agent())
    loop.set_mode(Mode.ACTIVE, Rollout.from_fields({"ingress": ["ATLAng"]}, path_set.nodes))
    decision, record = loop.decide(state, NOW)
    fallback = make_policy("invcap", path_set).decide(state)
    agent = Agent().decide(state)
    assert record.source == "blend" and "OD pairs entering at ATLAng" in record.action
    for od, (s, _) in enumerate(path_set.od_pairs):
        want = agent if s == "ATLAng" else fallback
        np.testing.assert_allclose(decision.od_weights(od), want.od_weights(od))


def test_a_rollout_widens_while_the_measured_mlu_is_no_worse_than_the_fallbacks(path_set):
    loop, state = trusted_loop_with_a_link_down(path_set, Agent())
    loop.set_mode(Mode.ACTIVE, Rollout.from_fields({"fraction": 0.25, "step": 0.25},
                                                   path_set.nodes, widen_after=2))
    steps = []
    for _ in range(8):
        decision, record = loop.decide(state, NOW)
        measured_as_installed(state, decision)
        steps.append((record.source, record.fraction))
    assert steps == [("blend", 0.25), ("blend", 0.25), ("blend", 0.5), ("blend", 0.5),
                     ("blend", 0.75), ("blend", 0.75), ("agent", None), ("agent", None)]
    widened = [r.action for r in loop.log.records if r.action and "widened" in r.action]
    assert widened[0].startswith("rollout widened 25% -> 50% after 2 intervals with measured "
                                 "MLU within the margin of the fallback's")
    assert widened[-1].endswith("(complete: the agent's own decision)")


def test_a_rollout_rolls_back_when_the_measured_mlu_is_worse_than_the_fallbacks(path_set):
    loop, state = trusted_loop_with_a_link_down(path_set, Agent())
    loop.set_mode(Mode.ACTIVE, Rollout(fraction=0.5, step=0.25))
    decision, record = loop.decide(state, NOW)
    assert record.source == "blend"
    measured_as_installed(state, decision, factor=1.5)  # the switches did worse than predicted
    decision, record = loop.decide(state, NOW)
    assert record.source == "fallback" and loop.mode is Mode.SHADOW
    assert record.action.startswith("rollback to the fallback, mode shadow: measured MLU ")
    assert "worse than the fallback's predicted" in loop.rollout.rolled_back
    np.testing.assert_array_equal(decision.weights,
                                  make_policy("invcap", path_set).decide(state).weights)
    assert loop.decide(state, NOW)[1].source == "fallback"  # until the operator activates again


def test_on_an_idle_network_the_measured_mlu_does_not_roll_back(path_set):
    loop, state = trusted_loop_with_a_link_down(path_set, Agent())
    loop.set_mode(Mode.ACTIVE, Rollout(fraction=0.5))
    quiet = make_state(path_set, scale=0.01, down=DOWN)
    decision, _ = loop.decide(quiet, NOW)
    measured_as_installed(quiet, decision, factor=3.0)  # 3 x an MLU of ~0.002: noise
    assert loop.decide(quiet, NOW)[1].source == "blend"


@pytest.mark.parametrize("data, message", [
    ({"fraction": 0}, "fraction must be a number in (0, 1], got 0"),
    ({"fraction": 1.5}, "fraction must be a number in (0, 1], got 1.5"),
    ({"fraction": "half"}, "fraction must be a number in (0, 1], got 'half'"),
    ({"fraction": True}, "fraction must be a number in (0, 1], got True"),
    ({"step": -0.1}, "step must be a number in [0, 1], got -0.1"),
    ({"ingress": "ATLAng"}, "ingress must be a list of switch names"),
    ({"ingress": []}, "ingress must be a non-empty list"),
    ({"ingress": ["ATLAng", "Nowhere"]}, "no such switch(es) Nowhere"),
    ({"speed": 2}, "unknown rollout field(s) speed; allowed: fraction, step, ingress"),
])
def test_bad_rollouts_are_one_clear_error(path_set, data, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Rollout.from_fields(data, path_set.nodes)


def test_a_rollout_needs_active_mode(path_set):
    loop = loop_with(path_set, Agent())
    with pytest.raises(ValueError, match="needs mode active, not shadow"):
        loop.set_mode(Mode.SHADOW, Rollout(fraction=0.5))
    assert Rollout.from_fields({"fraction": None}, path_set.nodes) is None  # full activation
