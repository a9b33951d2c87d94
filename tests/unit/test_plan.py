"""``ryute plan`` on real files against hand calculations: a link whose load grows at a known
rate saturates on the computed day, more capacity postpones it by the computed days, the
optimum and a failure move it as the triangle's arithmetic says."""
from __future__ import annotations

import json
import math
from datetime import date, timedelta

import numpy as np
import pytest

from agents.plan import Days, optimum_daily_peaks
from lab.cli import main
from sim.optimal import path_optimal
from sim.paths import PathSet
from topologies.catalog import load_topology
from topologies.traffic import TrafficSeries, save_traffic, synthetic_traffic

PER_DAY = 48  # 30-minute intervals
GROWTH = 0.10  # per month
DAILY = (1 + GROWTH) ** (12 / 365.25) - 1

# A -> B directly, or through C: 1000 Mbit/s every hop
TRIANGLE = {
    "name": "triangle", "nodes": ["A", "B", "C"],
    "links": [{"src": s, "dst": d, "capacity_mbps": 1000.0}
              for u, v in [("A", "B"), ("A", "C"), ("C", "B")] for s, d in [(u, v), (v, u)]],
}


def write_case(tmp_path, days: int = 10, peak: float = 400.0, times: bool = True):
    """A -> B only: a daily cycle (trough a third of the peak) whose every value grows by
    DAILY a day; the first day's peak is ``peak`` Mbit/s."""
    topology = tmp_path / "triangle.json"
    topology.write_text(json.dumps(TRIANGLE))
    t = np.arange(days * PER_DAY)
    cycle = (2 + np.sin(2 * np.pi * (t % PER_DAY - PER_DAY / 4) / PER_DAY)) / 3
    demand = peak * cycle * (1 + DAILY) ** (t / PER_DAY)
    tm = np.zeros((len(t), 3, 3))
    tm[:, 0, 1] = demand
    stamps = tuple(f"202403{1 + i // PER_DAY:02d}-{(i % PER_DAY) // 2:02d}{30 * (i % 2):02d}"
                   for i in t) if times else ()
    traffic = tmp_path / "series.tm.npz"
    save_traffic(TrafficSeries(tm=tm, nodes=("A", "B", "C"), times=stamps, interval_s=1800,
                               source="test"), traffic)
    return str(topology), str(traffic), demand


def plan(tmp_path, *extra):
    topology, traffic, demand = write_case(tmp_path)
    out = tmp_path / "plan.json"
    assert main(["plan", "--topology", topology, "--traffic", traffic, "--json", str(out),
                 *extra]) == 0
    return json.loads(out.read_text()), demand


def links_of(routing):
    return {tuple(row["link"]): row for row in routing["links"]}


def expected_days(reference: float, threshold: float = 0.8) -> float:
    return math.log(threshold / reference) / math.log1p(DAILY)


def test_a_link_growing_at_a_known_rate_saturates_on_the_computed_day(tmp_path):
    document, demand = plan(tmp_path, "--growth", "10%/month")
    # the last day's peak: every day's peak brought forward is the same number
    reference = demand[-PER_DAY:].max() / 1000
    row = links_of(document["routings"]["fallback"])["A", "B"]
    assert row["peak_utilization"] == pytest.approx(reference, rel=1e-3)
    assert row["days_to_threshold"] == pytest.approx(expected_days(reference), abs=0.05)
    # the last day is 2024-03-10; the crossing is on the day the days run out
    crossing = date(2024, 3, 10) + timedelta(days=math.ceil(row["days_to_threshold"]))
    assert row["date"] == crossing.isoformat()
    assert document["routings"]["fallback"]["first"]["link"] == ["A", "B"]
    assert links_of(document["routings"]["fallback"])["B", "A"]["days_to_threshold"] is None


def test_the_growth_is_fitted_from_the_series(tmp_path):
    document, demand = plan(tmp_path)
    assert document["growth"]["source"] == "auto"
    assert document["growth"]["per_month"] == pytest.approx(GROWTH, rel=0.01)
    assert document["growth"]["days"] == 10
    row = links_of(document["routings"]["fallback"])["A", "B"]
    assert row["days_to_threshold"] == pytest.approx(
        expected_days(demand[-PER_DAY:].max() / 1000), abs=0.5)


def test_the_optimum_splits_over_the_two_paths_and_saturates_later(tmp_path):
    document, demand = plan(tmp_path, "--growth", "10%/month")
    optimum = document["routings"]["optimum"]
    reference = demand[-PER_DAY:].max() / 1000 / 2  # half direct, half through C
    assert optimum["peak_mlu"] == pytest.approx(reference, rel=1e-3)
    fallback = links_of(document["routings"]["fallback"])["A", "B"]["days_to_threshold"]
    assert optimum["days_to_threshold"] == pytest.approx(fallback + math.log(2) / math.log1p(DAILY),
                                                         abs=0.05)
    assert sorted(map(tuple, optimum["bottlenecks"])) == [("A", "B"), ("A", "C"), ("C", "B")]


def test_adding_capacity_postpones_saturation_by_the_computed_days(tmp_path):
    document, _ = plan(tmp_path, "--growth", "10%/month", "--add", "A-B=2000")
    before = links_of(document["routings"]["fallback"])["A", "B"]
    after = links_of(document["what_if"]["routings"]["fallback"])["A", "B"]
    assert after["peak_utilization"] == pytest.approx(before["peak_utilization"] / 2)
    assert after["days_to_threshold"] == pytest.approx(
        before["days_to_threshold"] + math.log(2) / math.log1p(DAILY), abs=0.05)
    assert document["what_if"]["capacities"] == [
        {"link": ["A", "B"], "capacity_mbps": 2000.0},
        {"link": ["B", "A"], "capacity_mbps": 2000.0}]


def test_a_single_link_failure_is_the_worst_case_of_the_detour(tmp_path):
    document, demand = plan(tmp_path, "--growth", "10%/month", "--failures", "n-1")
    failures = document["routings"]["failures"]
    assert failures["cases"] == 3 and failures["skipped"] == []
    reference = demand[-PER_DAY:].max() / 1000
    worst = links_of(failures)
    # with A-B down, all of A -> B goes through C
    for link in (("A", "C"), ("C", "B")):
        assert worst[link]["peak_utilization"] == pytest.approx(reference, rel=1e-3)
        assert worst[link]["worst_failure"] == [["A", "B"], ["B", "A"]]
    assert worst["A", "B"]["peak_utilization"] == pytest.approx(reference, rel=1e-3)
    # the optimum with A-B down has only the detour
    assert failures["optimum_worst"]["down"] == [["A", "B"], ["B", "A"]]
    assert failures["optimum_worst"]["peak_mlu"] == pytest.approx(reference, rel=1e-3)


def test_the_bounded_daily_optimum_is_the_brute_force_one():
    graph = load_topology("ring:n=5")
    series = synthetic_traffic(graph, steps=3 * 96, seed=4, interval_s=900)
    path_set = PathSet.from_graph(graph, k=3)
    days = Days.of(series, 900)
    valid = series.valid_mask
    from agents.forecast_cli import fallback_loads

    for down in ((), (path_set.edges[0], path_set.edges[0][::-1])):
        upper = (fallback_loads(path_set, series.tm, down) / path_set.capacities).max(axis=1)
        peaks, where, solved = optimum_daily_peaks(path_set, series.tm, valid, days, upper,
                                                   down)
        brute = np.array([path_optimal(path_set, m, True, down)[0] for m in series.tm])
        assert np.allclose(peaks, brute.reshape(3, 96).max(axis=1), rtol=1e-6)
        assert np.allclose(brute[where], peaks)
        assert solved < len(series) / 2  # the bounds spare most of the LPs


def test_the_timeline_plot_is_written(tmp_path):
    plot = tmp_path / "timeline.png"
    plan(tmp_path, "--growth", "10%/month", "--failures", "n-1", "--plot", str(plot))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("extra, message", [
    (["--growth", "500%/month"], "not a planning scenario"),
    (["--growth", "fast"], "--growth must be 'auto'"),
    (["--add", "A-Z=10"], "--add must be LINK=CAP"),
    (["--add", "A-B=-5"], "must end up positive"),
    (["--add", "A-B=lots"], "capacity must be a number"),
    (["--threshold", "0"], "--threshold must be"),
    (["--failures", "A-Z"], "is not a link"),
])
def test_bad_plan_arguments_are_one_line(tmp_path, capsys, extra, message):
    topology, traffic, _ = write_case(tmp_path)
    assert main(["plan", "--topology", topology, "--traffic", traffic, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_auto_growth_needs_three_days(tmp_path, capsys):
    topology, traffic, _ = write_case(tmp_path, days=2)
    assert main(["plan", "--topology", topology, "--traffic", traffic]) == 2
    assert "needs 3 days" in capsys.readouterr().err


def test_a_series_without_times_counts_days_from_its_start(tmp_path):
    topology, traffic, demand = write_case(tmp_path, times=False)
    out = tmp_path / "plan.json"
    assert main(["plan", "--topology", topology, "--traffic", traffic, "--growth", "10%/month",
                 "--json", str(out)]) == 0
    row = links_of(json.loads(out.read_text())["routings"]["fallback"])["A", "B"]
    assert row["date"] is None
    assert row["days_to_threshold"] == pytest.approx(
        expected_days(demand[-PER_DAY:].max() / 1000), abs=0.05)


@pytest.mark.slow
def test_the_agent_is_planned_on_its_own_paths(tmp_path):
    document, _ = plan(tmp_path, "--growth", "10%/month", "--model", "default")
    agent, optimum = document["routings"]["agent"], document["routings"]["optimum"]
    assert agent["peak_mlu"] >= optimum["peak_mlu"] * (1 - 1e-6)
    assert agent["days_to_threshold"] == pytest.approx(expected_days(agent["peak_mlu"]),
                                                       abs=0.05)
