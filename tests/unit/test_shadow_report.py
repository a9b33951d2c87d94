"""``ryute shadow-report`` on a decision log written by the real decision loop."""
from __future__ import annotations

import json

import pytest
from test_decision_loop import NOW, Agent, make_state

from agents.baselines import make_policy
from controller.decisions import DecisionLog, DecisionLoop, HealthConfig
from lab.cli import main
from sim.paths import PathSet
from topologies.catalog import load_topology


def test_report_says_what_the_agent_would_have_changed(tmp_path, capsys):
    path_set = PathSet.from_graph(load_topology("abilene"), k=4)
    log_file = tmp_path / "decisions.jsonl"
    loop = DecisionLoop(make_policy("invcap", path_set), poll_interval_s=2.0,
                        log=DecisionLog(path=log_file),
                        health=HealthConfig(budget_ms=5000))  # never late on a busy machine
    loop.set_agent(Agent(), "m1")
    state = make_state(path_set)
    for i in range(6):
        loop.decide(state, NOW + i)
        loop.log.measured(0.4)
    plot = tmp_path / "shadow.png"
    assert main(["shadow-report", str(log_file), "--json", "--plot", str(plot)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["decisions"] == 6 and summary["with_agent"] == 6
    assert summary["agent_better"] == 6 and summary["differed"] == 6
    assert summary["would_change_mean_mlu_by"] < 0  # the LP-optimal agent beats invcap
    assert summary["measured_mlu_mean"] == pytest.approx(0.4)
    assert plot.stat().st_size > 1000
    assert main(["shadow-report", str(log_file)]) == 0
    assert "activating the agent would have changed the mean predicted MLU by -" in \
        capsys.readouterr().out


def test_a_file_that_is_not_a_decision_log_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"seq": 1}\n')
    assert main(["shadow-report", str(bad)]) == 2
    assert "bad.jsonl:1: not a decision record" in capsys.readouterr().err


def test_report_and_decisions_view_show_held_decisions(tmp_path, capsys):
    """A transient fault in active mode: the log says the agent's decision was held, and why."""
    from controller.client import _decisions_text
    from controller.decisions import Mode

    path_set = PathSet.from_graph(load_topology("abilene"), k=4)
    log_file = tmp_path / "decisions.jsonl"
    agent = Agent()
    loop = DecisionLoop(make_policy("invcap", path_set), poll_interval_s=2.0, mode=Mode.ACTIVE,
                        log=DecisionLog(path=log_file),
                        health=HealthConfig(budget_ms=5000))  # never late by accident
    loop.set_agent(agent, "m1")
    for i in range(5):
        agent.behaviour = "raise" if i == 3 else "optimal"
        loop.decide(make_state(path_set, updated_at=NOW + 2 * i), NOW + 2 * i)
        loop.log.measured(0.4)
    assert main(["shadow-report", str(log_file), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["installed"] == {"agent": 2, "agent-held": 1, "fallback": 2}
    assert summary["unhealthy_reasons"] == {"agent raised RuntimeError": 1}
    assert main(["shadow-report", str(log_file)]) == 0
    assert "installed: agent 2, agent-held 1, fallback 2" in capsys.readouterr().out
    text = _decisions_text({"decisions": loop.log.latest(5)})
    held = next(line for line in text.splitlines() if " agent-held " in line)
    assert "agent raised RuntimeError: model exploded -> transient fault: holding the agent's " \
           "decision of seq 3" in held
    assert "earns trust: 1 of 3 healthy decisions" in text  # a fallback record says why


def test_a_record_with_a_source_that_is_not_a_string_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"seq": 1, "predicted_mlu": {"fallback": 0.5}, "source": [1]})
                   + "\n")
    assert main(["shadow-report", str(bad)]) == 2
    assert "bad.jsonl:1: not a decision record (source must be a string)" in \
        capsys.readouterr().err


def test_shadow_and_active_records_are_reported_apart_and_the_switch_is_marked(tmp_path,
                                                                               capsys):
    """Four shadow intervals, the operator switches to active, three more: the comparison is
    made on the shadow records, the active ones say what was installed, the switch is marked."""
    from controller.client import plot_title
    from controller.decisions import Mode

    path_set = PathSet.from_graph(load_topology("abilene"), k=4)
    log_file = tmp_path / "decisions.jsonl"
    loop = DecisionLoop(make_policy("invcap", path_set), poll_interval_s=2.0,
                        log=DecisionLog(path=log_file), health=HealthConfig(budget_ms=5000))
    loop.set_agent(Agent(), "m1")
    for i in range(7):
        if i == 4:
            loop.set_mode(Mode.ACTIVE, by="127.0.0.1 (curl)")
        loop.decide(make_state(path_set, updated_at=NOW + 2 * i), NOW + 2 * i)
        loop.log.measured(0.5 if i < 4 else 0.3)
    loop.decide(make_state(path_set, updated_at=NOW + 14), NOW + 14)  # writes the 7th record
    plot = tmp_path / "report.png"
    assert main(["shadow-report", str(log_file), "--json", "--plot", str(plot),
                 "--topology", "abilene"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["decisions"] == 7
    assert summary["by_mode"]["shadow"]["decisions"] == 4
    assert summary["by_mode"]["active"]["decisions"] == 3
    assert summary["with_agent"] == 4  # the comparison: the shadow records only
    assert summary["measured_mlu_mean"] == pytest.approx(0.5)
    assert summary["by_mode"]["active"]["measured_mlu_mean"] == pytest.approx(0.3)
    (switch,) = summary["mode_switches"]
    assert (switch["seq"], switch["from"], switch["to"], switch["by"]) == (
        5, "shadow", "active", "127.0.0.1 (curl)")
    assert plot.stat().st_size > 1000
    assert main(["shadow-report", str(log_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "7 decisions: 4 in shadow (seq 1-4), 3 in active (seq 5-7)"
    assert lines[1].startswith("--- switched shadow -> active from seq 5 at ")
    assert lines[1].endswith(", by 127.0.0.1 (curl)")
    assert lines[2].startswith("shadow: 4 decisions, 4 with an agent decision")
    active = next(line for line in lines if line.startswith("active: "))
    assert "3 decisions, installed " in active and "measured MLU mean 0.300" in active
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    title = plot_title(records, "abilene")
    assert title.startswith("abilene, model m1\n7 intervals (seq 1-7), ")


def test_an_unknown_mode_in_a_record_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"seq": 1, "predicted_mlu": {"fallback": 0.5}, "mode": "on"})
                   + "\n")
    assert main(["shadow-report", str(bad)]) == 2
    assert "bad.jsonl:1: not a decision record (mode must be one of shadow, active, " \
           "external)" in capsys.readouterr().err
