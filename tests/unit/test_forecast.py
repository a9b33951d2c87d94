"""Forecasts (sim.forecast) on series with a known pattern, and ``ryute forecast`` on real
files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lab.cli import main
from sim.forecast import ForecastError, Season, forecast, parse_horizon, rolling
from topologies.traffic import TrafficSeries, save_traffic

PERIOD = 48  # 30-minute intervals: a day is 48 of them (keeps the tests fast)


def daily(days: int, trend_per_day: float = 0.0, noise: float = 0.0, seed: int = 0,
          series: int = 3) -> np.ndarray:
    """[T, S]: a daily cycle (peak at noon, x3 between trough and peak), a multiplicative
    trend, log-normal noise of standard deviation ``noise``."""
    t = np.arange(days * PERIOD)
    cycle = 1.0 + 0.5 * np.sin(2 * np.pi * (t % PERIOD - PERIOD / 4) / PERIOD)
    level = np.exp(np.log1p(trend_per_day) * t / PERIOD)
    rng = np.random.default_rng(seed)
    scale = np.array([100.0, 20.0, 5.0])[:series]
    y = scale * (cycle * level)[:, None]
    return y * rng.lognormal(-noise**2 / 2, noise, size=y.shape) if noise else y


@pytest.mark.parametrize("text, interval, steps", [
    ("5m", 300, 1), ("1h", 300, 12), ("1d", 300, 288), ("4w", 300, 8064),
    ("5m", 900, 1), ("1h", 900, 4), ("1d", 900, 96), ("7", 300, 7), ("90min", 1800, 3)])
def test_horizons_are_whole_intervals_rounded_up(text, interval, steps):
    assert parse_horizon(text, interval) == steps


@pytest.mark.parametrize("text", ["soon", "-1h", "0", "1y", ""])
def test_a_bad_horizon_is_refused(text):
    with pytest.raises(ForecastError, match="horizon"):
        parse_horizon(text, 300)


def test_a_daily_cycle_with_a_trend_is_forecast_a_day_ahead():
    y = daily(8, trend_per_day=0.05)
    truth = daily(9, trend_per_day=0.05)[8 * PERIOD:]
    valid = np.ones(len(y), bool)
    season = Season(PERIOD)
    result = forecast(y, valid, PERIOD, "seasonal", season)
    error = np.abs(result.mean - truth) / truth
    assert error.mean() < 0.03
    # the seasonal-naive forecast repeats yesterday: 5 % low, whatever the hour
    naive = forecast(y, valid, PERIOD, "snaive", season)
    assert (np.abs(naive.mean - truth) / truth).mean() == pytest.approx(0.05 / 1.05, rel=0.01)
    assert result.period == PERIOD and result.history == len(y) and not result.weekly


def test_the_90_percent_interval_covers_about_90_percent_of_noisy_targets():
    y = daily(12, noise=0.15, seed=3)
    valid = np.ones(len(y), bool)
    start = 8 * PERIOD
    for h in (1, 6):
        r = rolling(y, valid, h, "seasonal", Season(PERIOD), fit_until=start)
        inside = (y[start:] >= r.lower[start:]) & (y[start:] <= r.upper[start:])
        assert 0.85 <= inside.mean() <= 0.95, (h, inside.mean())
        # the median forecast of a log-normal series misses by about 0.8 sigma on average
        relative = np.abs(y[start:] - r.mean[start:]) / r.mean[start:]
        assert relative.mean() < 0.16


def test_a_level_shift_is_followed_within_hours():
    y = daily(6)
    y[4 * PERIOD:] *= 5.0  # e.g. a new customer behind an ingress
    valid = np.ones(len(y), bool)
    r = rolling(y, valid, 1, "seasonal", Season(PERIOD), fit_until=4 * PERIOD)
    after = slice(4 * PERIOD + 6, None)  # three hours later
    assert (np.abs(r.mean[after] - y[after]) / y[after]).mean() < 0.1


def test_missing_intervals_are_neither_targets_nor_origins():
    y = daily(5)
    valid = np.ones(len(y), bool)
    y[100:110] = 0.0
    valid[100:110] = False
    result = forecast(y, valid, 12, "seasonal", Season(PERIOD))
    truth = daily(6)[5 * PERIOD: 5 * PERIOD + 12]
    assert (np.abs(result.mean - truth) / truth).mean() < 0.03
    assert result.history == len(y) - 10


def test_last_value_repeats_the_newest_valid_interval():
    y = daily(3)
    valid = np.ones(len(y), bool)
    valid[-2:] = False
    result = forecast(y, valid, 4, "last", Season(PERIOD))
    assert np.allclose(result.mean, y[-3])


@pytest.mark.parametrize("y, valid, message", [
    (np.ones((1, 2)), np.ones(1, bool), "1 valid interval"),
    (np.zeros((50, 2)), np.ones(50, bool), "no demand at all"),
    (np.full((5, 2), np.nan), np.ones(5, bool), "finite"),
])
def test_unusable_histories_are_refused(y, valid, message):
    with pytest.raises(ForecastError, match=message):
        forecast(y, valid, 4, "seasonal", Season(PERIOD))


def test_a_short_history_says_it_has_no_daily_cycle():
    y = daily(1)
    result = forecast(y, np.ones(len(y), bool), 4, "seasonal", Season(PERIOD))
    assert result.period is None
    assert any("less than two days" in note for note in result.notes)


# -- the command --------------------------------------------------------------------------------
TRIANGLE = {
    "name": "triangle", "nodes": ["A", "B", "C"],
    "links": [{"src": s, "dst": d, "capacity_mbps": 1000.0}
              for u, v in [("A", "B"), ("A", "C"), ("C", "B")] for s, d in [(u, v), (v, u)]],
}


def write_case(tmp_path, demand: np.ndarray, interval_s: int | None = 1800):
    topology = tmp_path / "triangle.json"
    topology.write_text(json.dumps(TRIANGLE))
    tm = np.zeros((len(demand), 3, 3))
    tm[:, 0, 1] = demand       # A -> B: on the direct link under the fallback
    tm[:, 2, 0] = 0.5 * demand  # C -> A
    times = tuple(f"202401{1 + t * (interval_s or 1800) // 86400:02d}-"
                  f"{(t * (interval_s or 1800) % 86400) // 3600:02d}"
                  f"{(t * (interval_s or 1800) % 3600) // 60:02d}" for t in range(len(demand)))
    traffic = tmp_path / "series.tm.npz"
    save_traffic(TrafficSeries(tm=tm, nodes=("A", "B", "C"), times=times, interval_s=interval_s,
                               source="test"), traffic)
    return str(topology), str(traffic)


def test_forecast_command_json(tmp_path, capsys):
    demand = daily(4, series=1)[:, 0]
    topology, traffic = write_case(tmp_path, demand)
    out = tmp_path / "forecast.json"
    assert main(["forecast", "--topology", topology, "--traffic", traffic, "--horizon", "1d",
                 "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["horizon"] == {"text": "1d", "intervals": PERIOD, "seconds": 86400}
    assert document["history"]["valid"] == 4 * PERIOD and document["history"]["days"] == 4.0
    assert document["daily_cycle"] and not document["weekly_cycle"]
    assert document["model"] == "seasonal" and document["times"][0] == "20240105-0000"
    od = {tuple(row["od"]): row for row in document["od"]}
    links = {tuple(row["link"]): row for row in document["links"]}
    truth = daily(5, series=1)[4 * PERIOD:, 0]
    assert np.allclose(od["A", "B"]["mean"], truth, rtol=0.03)
    # A -> B is alone on link A-B under the fallback: its forecast is the OD pair's
    assert np.allclose(links["A", "B"]["mean"], truth, rtol=0.03)
    assert np.allclose(links["C", "A"]["mean"], 0.5 * truth, rtol=0.03)
    assert links["B", "A"]["mean"] == [0.0] * PERIOD
    for row in (od["A", "B"], links["A", "B"]):
        assert all(lo <= m <= hi for lo, m, hi in zip(row["lower"], row["mean"], row["upper"]))
    assert links["A", "B"]["peak_utilization"] == pytest.approx(truth.max() / 1000, rel=0.03)
    printed = capsys.readouterr().out
    assert "A-B" in printed and "A->B" in printed


@pytest.mark.parametrize("change, message", [
    (["--horizon", "soon"], "horizon must look like"),
    (["--model", "magic"], None),
    (["--level", "1.5"], "between 0 and 1"),
])
def test_forecast_command_bad_arguments_are_one_line(tmp_path, capsys, change, message):
    topology, traffic = write_case(tmp_path, daily(3, series=1)[:, 0])
    args = ["forecast", "--topology", topology, "--traffic", traffic, *change]
    if message is None:  # argparse's own refusal
        with pytest.raises(SystemExit):
            main(args)
        assert "invalid choice" in capsys.readouterr().err
        return
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_forecast_command_refuses_a_series_of_another_topology(tmp_path, capsys):
    _, traffic = write_case(tmp_path, daily(3, series=1)[:, 0])
    assert main(["forecast", "--topology", "abilene", "--traffic", traffic]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not match abilene" in err and len(err.splitlines()) == 1


def test_forecast_command_needs_to_know_the_interval(tmp_path, capsys):
    topology, traffic = write_case(tmp_path, daily(3, series=1)[:, 0], interval_s=None)
    assert main(["forecast", "--topology", topology, "--traffic", traffic]) == 2
    assert "no interval_s" in capsys.readouterr().err
