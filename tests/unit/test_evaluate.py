"""``ryute evaluate`` end to end on real files: numbers computed by hand, JSON schema, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from agents.evaluate import select_intervals
from lab.cli import main
from topologies.traffic import TrafficSeries, save_traffic

# A -> B directly (10 Mbit/s) or through C (10 Mbit/s per hop): the optimum splits in half.
TRIANGLE = {
    "name": "triangle", "nodes": ["A", "B", "C"],
    "links": [{"src": s, "dst": d, "capacity_mbps": 10.0}
              for u, v in [("A", "B"), ("A", "C"), ("C", "B")] for s, d in [(u, v), (v, u)]],
}


def write_case(tmp_path, demands, nodes=("A", "B", "C")):
    topology = tmp_path / "triangle.json"
    topology.write_text(json.dumps(TRIANGLE))
    tm = np.zeros((len(demands), len(nodes), len(nodes)))
    tm[:, 0, 1] = demands  # A -> B only
    traffic = tmp_path / "series.tm.npz"
    save_traffic(TrafficSeries(tm=tm, nodes=tuple(nodes), interval_s=300, source="test"), traffic)
    return str(topology), str(traffic)


def test_hand_computed_ratios_and_json_schema(tmp_path):
    topology, traffic = write_case(tmp_path, [8.0, 8.0, 0.0, 4.0])
    out = tmp_path / "result.json"
    code = main(["evaluate", "--topology", topology, "--traffic", traffic,
                 "--methods", "sp,lp_last", "--json", str(out), "--plot", str(tmp_path / "c.png")])
    assert code == 0
    result = json.loads(out.read_text())
    # t = 1, 2, 3; interval 2 is a missing measurement (all zero): skipped, never divided by.
    assert result["intervals"] == [1, 2, 3]
    assert result["optimal"] == pytest.approx([0.4, None, 0.2], nan_ok=True)
    sp = result["methods"]["sp"]
    assert sp["per_tm"] == pytest.approx([0.8, None, 0.4], nan_ok=True)  # all on A -> B
    assert sp["ratio"]["mean"] == pytest.approx(2.0)
    lp_last = result["methods"]["lp_last"]
    # Decides from the previous measured matrix (8 at t=1, 8 at t=3): an even split is optimal.
    assert lp_last["per_tm"] == pytest.approx([0.4, None, 0.2], nan_ok=True)
    assert sp["mlu"] == pytest.approx({"mean": 0.6, "max": 0.8})  # absolute, beside the ratio
    assert result["optimal_mlu"] == pytest.approx({"mean": 0.3, "max": 0.4})
    for summary in result["methods"].values():
        assert set(summary["ratio"]) == {"mean", "p50", "p90", "p99", "max"}
        assert set(summary["decision_ms"]) == {"mean", "p99"}
        assert summary["decision_ms"]["mean"] >= 0
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_the_table_prints_absolute_mlu_beside_the_ratios(tmp_path, capsys):
    topology, traffic = write_case(tmp_path, [8.0, 8.0, 0.0, 4.0])
    assert main(["evaluate", "--topology", topology, "--traffic", traffic,
                 "--methods", "sp"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()
            if line.split() and line.split()[0] in ("sp", "optimal")}
    assert rows["sp"][1] == "2.000" and rows["sp"][-2:] == ["0.6000", "0.8000"]
    assert rows["optimal"][-2:] == ["0.3000", "0.4000"]


def test_the_plot_is_titled_with_what_it_shows(tmp_path):
    from agents.evaluate import plot_title
    from lab.cli import build_parser

    topology, traffic = write_case(tmp_path, [8.0, 8.0, 0.0, 4.0])
    argv = ["evaluate", "--topology", topology, "--traffic", traffic, "--methods", "sp",
            "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0
    document = json.loads((tmp_path / "r.json").read_text())
    title = plot_title(document, build_parser().parse_args(argv), len(document["intervals"]))
    assert title == "triangle, traffic series.tm.npz, 3 intervals"
    document["methods"]["agent"] = {}
    args = build_parser().parse_args([*argv, "--model", "m.zip", "--adapt"])
    assert plot_title(document, args, 3) == ("triangle, traffic series.tm.npz, model m.zip "
                                             "(adapting), 3 intervals")


def test_last_selects_the_end_of_the_series():
    series = TrafficSeries(tm=np.ones((10, 2, 2)) - np.eye(2), nodes=("A", "B"))
    assert select_intervals(series, None) == list(range(1, 10))
    assert select_intervals(series, "3") == [7, 8, 9]
    assert select_intervals(series, "20%") == [8, 9]
    assert select_intervals(series, "100") == list(range(1, 10))
    with pytest.raises(ValueError, match="--last"):
        select_intervals(series, "two")


@pytest.mark.parametrize("case, message", [
    ("nodes", "does not match triangle"),
    ("method", "unknown method(s) magic"),
    ("missing", "no such file"),
    ("short", "no interval to evaluate"),
])
def test_bad_input_is_one_clear_error_with_exit_code_2(tmp_path, capsys, case, message):
    nodes = ("A", "B", "X") if case == "nodes" else ("A", "B", "C")
    topology, traffic = write_case(tmp_path, [1.0] if case == "short" else [1.0, 2.0], nodes)
    args = ["evaluate", "--topology", topology, "--traffic", traffic]
    if case == "method":
        args += ["--methods", "sp,magic"]
    if case == "missing":
        args[-1] = str(tmp_path / "absent.tm.npz")
    assert main(args) == 2
    error = capsys.readouterr().err
    assert error.startswith("ryute evaluate: error:") and message in error
    assert "Traceback" not in error


def test_the_agent_is_evaluated_like_any_method(tmp_path, ring_model):
    out = tmp_path / "agent.json"
    assert main(["evaluate", "--topology", "ring:n=5", "--traffic", "synthetic", "--steps", "60",
                 "--seed", "9", "--methods", "agent,invcap", "--model", str(ring_model),
                 "--history", "4", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result["methods"]) == ["agent", "invcap"]
    agent = result["methods"]["agent"]
    assert agent["ratio"]["mean"] >= 1.0 - 1e-9 and agent["decision_ms"]["mean"] > 0


def test_a_model_for_another_topology_is_one_clear_error(ring_model, capsys):
    assert main(["evaluate", "--topology", "ring:n=6", "--traffic", "synthetic", "--steps", "20",
                 "--methods", "agent", "--model", str(ring_model)]) == 2
    error = capsys.readouterr().err
    assert "trained for topology ring5" in error and "Traceback" not in error


def test_single_link_failures_are_scored_against_the_optimum_with_the_link_down(tmp_path):
    topology, traffic = write_case(tmp_path, [8.0, 8.0, 8.0])
    out = tmp_path / "result.json"
    assert main(["evaluate", "--topology", topology, "--traffic", traffic,
                 "--methods", "sp,lp_last,lp_pred", "--failures", "n-1",
                 "--json", str(out)]) == 0
    failures = json.loads(out.read_text())["failures"]
    assert failures["skipped"] == []
    assert sorted(sorted(map(tuple, c["down"])) for c in failures["cases"]) == [
        [("A", "B"), ("B", "A")], [("A", "C"), ("C", "A")], [("B", "C"), ("C", "B")]]
    # with one link down 8 Mbit/s has one path left: every method is optimal (0.8 / 0.8);
    # against the intact network's optimum (0.4) the ratio would be 2
    for method in ("sp", "lp_last", "lp_pred"):
        assert failures["overall"][method]["mean"] == pytest.approx(1.0)
        assert failures["overall"][method]["worst_p99"] == pytest.approx(1.0)
    # without failures sp's single path is twice the optimum
    assert json.loads(out.read_text())["methods"]["sp"]["ratio"]["mean"] == pytest.approx(2.0)


def test_a_failure_that_is_not_a_link_is_a_clear_error(tmp_path, capsys):
    topology, traffic = write_case(tmp_path, [8.0, 8.0])
    assert main(["evaluate", "--topology", topology, "--traffic", traffic, "--methods", "sp",
                 "--failures", "A-Z"]) == 2
    assert "--failures: 'A-Z' is not a link A-B of the topology" in capsys.readouterr().err
