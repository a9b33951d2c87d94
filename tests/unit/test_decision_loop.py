"""The decision loop without a controller: trust, hysteresis, modes, faults, the decision log."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pytest

from agents.baselines import make_policy
from controller.decisions import DecisionLog, DecisionLoop, HealthConfig, Mode
from sim.decision import Decision
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
            time.sleep(0.3)
        if self.behaviour == "down_link":
            dead = ~ps.live_paths(state.down_links)
            return Decision(ps, np.where(dead, 1.0, 1e-9))
        if self.behaviour == "worse":
            return make_policy("sp", ps).decide(state)
        return path_optimal(ps, state.last_matrix, down_links=state.down_links)[1]


def loop_with(path_set, agent, mode=Mode.ACTIVE):
    loop = DecisionLoop(make_policy("invcap", path_set), poll_interval_s=2.0, mode=mode,
                        health=HealthConfig(budget_ms=100))
    loop.set_agent(agent, "test-model")
    return loop


DOWN = {("ATLAng", "HSTNng"), ("HSTNng", "ATLAng")}


def trusted_loop_with_a_link_down(path_set, agent):
    """An active loop whose agent has earned trust, on a state with one link down."""
    loop = loop_with(path_set, agent)
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


@pytest.mark.parametrize("behaviour, reason", [
    ("raise", "agent raised RuntimeError: model exploded"),
    ("slow", "slower than the 100 ms budget"),
    ("down_link", "malformed decision"),
    ("worse", "worse than the fallback"),
])
def test_a_fault_hands_over_to_the_fallback_in_the_same_interval(path_set, behaviour, reason):
    agent = Agent()
    loop, state = trusted_loop_with_a_link_down(path_set, agent)
    agent.behaviour = behaviour
    decision, record = loop.decide(state, NOW)
    assert record.source == "fallback" and not record.trusted
    assert any(reason in r for r in record.reasons), record.reasons
    assert not decision.validate(DOWN)  # the installed decision never uses the dead link
    if behaviour == "slow":
        time.sleep(0.4)  # let the abandoned call finish
    agent.behaviour = "optimal"
    sources = [loop.decide(state, NOW)[1].source for _ in range(3)]
    assert sources == ["fallback", "fallback", "agent"]  # hysteresis: 3 healthy decisions


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
    time.sleep(0.4)


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


@pytest.mark.parametrize("fault, reason", [
    ("raise", "injected fault"), ("sleep", "budget"), ("nan", "malformed decision"),
    ("down_link", "malformed decision"), ("drift", "input drift"),
])
def test_injected_faults_are_caught_by_the_health_checks(path_set, tmp_path, fault, reason):
    from controller.faults import FaultInjector

    control = tmp_path / "faults.json"
    agent = FaultInjector(Agent(reference=100 * 132), control)
    loop, state = trusted_loop_with_a_link_down(path_set, agent)
    control.write_text(json.dumps({"fault": fault, "seconds": 0.3}))
    decision, record = loop.decide(state, NOW)
    assert record.source == "fallback" and any(reason in r for r in record.reasons), record
    assert not decision.validate(DOWN)
    control.write_text("{}")
    if fault == "sleep":
        time.sleep(0.4)
    assert [loop.decide(state, NOW)[1].source for _ in range(3)][-1] == "agent"
