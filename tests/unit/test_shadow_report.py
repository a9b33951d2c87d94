"""``ryute shadow-report`` on a decision log written by the real decision loop."""
from __future__ import annotations

import json

import pytest
from test_decision_loop import NOW, Agent, make_state

from agents.baselines import make_policy
from controller.decisions import DecisionLog, DecisionLoop
from lab.cli import main
from sim.paths import PathSet
from topologies.catalog import load_topology


def test_report_says_what_the_agent_would_have_changed(tmp_path, capsys):
    path_set = PathSet.from_graph(load_topology("abilene"), k=4)
    log_file = tmp_path / "decisions.jsonl"
    loop = DecisionLoop(make_policy("invcap", path_set), poll_interval_s=2.0,
                        log=DecisionLog(path=log_file))
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
