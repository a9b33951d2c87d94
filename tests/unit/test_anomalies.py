"""Anomaly detection (sim.anomaly) on series with injected anomalies, and ``ryute
anomalies`` on real files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lab.cli import main
from sim.anomaly import alerts, calibrate, scores
from sim.forecast import Season
from topologies.traffic import TrafficSeries, save_traffic

PERIOD = 48  # 30-minute intervals


def noisy_days(days: int, series: int = 6, noise: float = 0.05, seed: int = 1) -> np.ndarray:
    """[T, S] a shared daily cycle, each series at its own level, log-normal noise."""
    t = np.arange(days * PERIOD)
    cycle = 1.0 + 0.5 * np.sin(2 * np.pi * (t % PERIOD - PERIOD / 4) / PERIOD)
    levels = 10.0 * (1 + np.arange(series))
    rng = np.random.default_rng(seed)
    return levels * cycle[:, None] * rng.lognormal(-noise**2 / 2, noise, (len(t), series))


def found(result, column, start, slack=2):
    return [a for a in result if a.column == column and start <= a.start <= start + slack]


@pytest.mark.parametrize("detector", ["forecast", "mad"])
def test_a_spike_and_an_od_pair_going_dark_are_alerts(detector):
    y = noisy_days(10)
    valid = np.ones(len(y), bool)
    fit = 7 * PERIOD
    spike, dark = 8 * PERIOD + 20, 9 * PERIOD + 10
    y[spike: spike + 2, 2] *= 3.0  # an hour: shorter than a level shift
    y[dark: dark + 4, 4] = 0.0
    s = scores(detector, y, valid, Season(PERIOD), fit)
    threshold = calibrate(s, slice(PERIOD + 1, fit), 1.0, PERIOD)
    result = alerts(s, y, threshold, slice(fit, None), merge=2)
    assert found(result, 2, spike) and found(result, 4, dark)
    assert found(result, 2, spike)[0].score > 0 and found(result, 4, dark)[0].score < 0
    others = [a for a in result if not found([a], 2, spike, 4) and not found([a], 4, dark, 5)]
    assert len(others) <= 6  # three days at a budget of one a day, and chance


def test_thresholds_keep_the_alert_budget_on_fresh_noise():
    rng = np.random.default_rng(7)
    y = np.exp(rng.normal(0, 0.1, size=(40 * PERIOD, 20))) * 50
    valid = np.ones(len(y), bool)
    fit = 20 * PERIOD
    s = scores("forecast", y, valid, None, fit)
    threshold = calibrate(s, slice(13, fit), 2.0, PERIOD)
    per_day = len(alerts(s, y, threshold, slice(fit, None))) / 20
    assert 0.5 <= per_day <= 6.0, per_day


def test_the_pca_subspace_method_names_the_od_pair_off_the_common_pattern():
    y = noisy_days(6, series=8, noise=0.02)
    valid = np.ones(len(y), bool)
    fit = 4 * PERIOD
    at = 5 * PERIOD + 7
    y[at, 5] += 60.0
    s = scores("pca", y, valid, Season(PERIOD), fit)
    assert s.network and s.score.shape == (len(y), 1)
    threshold = calibrate(s, slice(PERIOD + 1, fit), 1.0, PERIOD)
    result = alerts(s, y, threshold, slice(fit, None))
    hit = [a for a in result if a.start == at]
    assert hit and hit[0].column == 5
    assert len(result) <= 3


def test_a_series_that_never_moved_raises_nothing_until_it_does():
    y = noisy_days(5, series=2)
    y[:, 1] = 0.0  # a link that carries nothing
    y[4 * PERIOD + 3, 1] = 5.0
    valid = np.ones(len(y), bool)
    s = scores("forecast", y, valid, Season(PERIOD), 3 * PERIOD)
    threshold = calibrate(s, slice(PERIOD + 1, 3 * PERIOD), 1.0, PERIOD)
    result = [a for a in alerts(s, y, threshold, slice(3 * PERIOD, None)) if a.column == 1]
    assert [a.start for a in result] == [4 * PERIOD + 3]


# -- the command --------------------------------------------------------------------------------
TRIANGLE = {
    "name": "triangle", "nodes": ["A", "B", "C"],
    "links": [{"src": s, "dst": d, "capacity_mbps": 1000.0}
              for u, v in [("A", "B"), ("A", "C"), ("C", "B")] for s, d in [(u, v), (v, u)]],
}
ODS = [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)]


def write_case(tmp_path, y: np.ndarray, interval_s: int | None = 1800):
    topology = tmp_path / "triangle.json"
    topology.write_text(json.dumps(TRIANGLE))
    tm = np.zeros((len(y), 3, 3))
    for k, (i, j) in enumerate(ODS):
        tm[:, i, j] = y[:, k]
    times = tuple(f"202401{1 + t // PERIOD:02d}-{(t % PERIOD) // 2:02d}{30 * (t % 2):02d}"
                  for t in range(len(y)))
    traffic = tmp_path / "series.tm.npz"
    save_traffic(TrafficSeries(tm=tm, nodes=("A", "B", "C"), times=times, interval_s=interval_s,
                               source="test"), traffic)
    return str(topology), str(traffic)


def test_anomalies_command_json(tmp_path, capsys):
    y = noisy_days(8)
    at = 6 * PERIOD + 24  # 2024-01-07 12:00
    y[at: at + 2, 0] *= 4.0  # A -> B: on link A-B, and a tenth of the total
    topology, traffic = write_case(tmp_path, y)
    out = tmp_path / "alerts.json"
    assert main(["anomalies", "--topology", topology, "--traffic", traffic, "--fit", "4d",
                 "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["fit"] == {"intervals": 4 * PERIOD, "last": "20240104-2330"}
    hits = [a for a in document["alerts"] if at <= a["interval"] <= at + 1]
    by_scope = {("od" if "od" in a else "link" if "link" in a else "total"): a for a in hits}
    assert by_scope["od"]["od"] == ["A", "B"] and by_scope["link"]["link"] == ["A", "B"]
    assert "total" in by_scope
    od = by_scope["od"]
    assert od["time"] == "20240107-1200" and od["kind"] == "spike" and od["score"] > 0
    assert od["value_mbps"] == pytest.approx(4 * od["expected_mbps"], rel=0.2)
    assert od["reason"].startswith("OD A->B rose")
    later = [a for a in document["alerts"] if a["interval"] >= 4 * PERIOD and "od" in a
             and not at <= a["interval"] <= at + 2]
    assert len(later) <= 2 * 4  # four days at a budget of one a day, with room for noise
    assert "OD A->B rose" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--fit", "most"], "--fit must be"),
    (["--fit", "1d"], "at least two days"),
    (["--alerts-per-day", "0"], "must be positive"),
])
def test_bad_anomaly_arguments_are_one_line(tmp_path, capsys, extra, message):
    topology, traffic = write_case(tmp_path, noisy_days(5))
    assert main(["anomalies", "--topology", topology, "--traffic", traffic, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_an_all_zero_series_is_refused(tmp_path, capsys):
    y = noisy_days(5)
    y[: 3 * PERIOD] = 0.0  # the fitting part missing
    topology, traffic = write_case(tmp_path, y)
    assert main(["anomalies", "--topology", topology, "--traffic", traffic, "--fit", "3d"]) == 2
    assert "no demand in the fitting part" in capsys.readouterr().err
