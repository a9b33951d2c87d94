"""Forecast accuracy on the shared real series: MASE and 90 % interval coverage.

    .venv/bin/python -m benchmarks.forecast [--out benchmarks/results/forecast.json]

Per series (every OD pair, and every link under the fallback routing) and horizon (5 min,
1 h, 1 day; a 15-minute series' shortest is one interval), each model forecasts every
interval of the held-out tail from ``h`` intervals before, as a controller running it all
along would: its parameters and interval widths are fitted on the intervals before the tail
only. Abilene: the last 3 days (2004-03-12..14, Friday to Sunday) after 11 days; GEANT: the
last day after 2.4 days. MASE divides each series' mean absolute error on the tail by the
in-sample mean absolute error of the one-day seasonal-naive forecast (Hyndman and Koehler
2006), then averages over the series whose scale is not zero; every model is scored on the
same targets. Coverage: the share of (target, series) inside the 90 % interval.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from agents.forecast_cli import Telemetry
from benchmarks.common import emit, shared_case
from sim.forecast import MODELS, mase_scale, parse_horizon, rolling
from sim.paths import PathSet

CASES = [
    ("abilene", "abilene-20040301-20040314.tm.npz", 3),
    ("geant", "geant-20050504-20050507.tm.npz", 1),
]
HORIZONS = ("5m", "1h", "1d")
LEVEL = 0.9


def run_case(topology: str, traffic_name: str, test_days: int) -> dict[str, Any]:
    case = shared_case(topology, traffic_name)
    if case is None:
        return {"skipped": f"{traffic_name} not found in the shared data folder"}
    graph, series = case
    data = Telemetry.of(series, PathSet.from_graph(graph, k=4))
    season = data.season
    assert season is not None and series.interval_s
    start = len(series) - test_days * season.period
    result: dict[str, Any] = {
        "traffic": traffic_name, "interval_s": series.interval_s,
        "fit": [series.times[0], series.times[start - 1]],
        "test": [series.times[start], series.times[-1]], "horizons": {}}
    for text in HORIZONS:
        h = parse_horizon(text, series.interval_s)
        result["horizons"][text] = {"intervals": h, **{
            kind: score(values, data.valid, h, season, start)
            for kind, values in (("od", data.od), ("links", data.links))}}
    return result


def score(y: np.ndarray, valid: np.ndarray, h: int, season, start: int) -> dict[str, Any]:
    forecasts, seconds = {}, {}
    for model in MODELS:
        began = time.perf_counter()
        forecasts[model] = rolling(y, valid, h, model, season, start, LEVEL)
        seconds[model] = round(time.perf_counter() - began, 2)
    targets = np.zeros(len(y), bool)
    targets[start:] = valid[start:]
    for f in forecasts.values():
        targets &= np.isfinite(f.mean).all(axis=1)
    scale = mase_scale(y[:start], valid[:start], season)
    keep = scale > 0
    out: dict[str, Any] = {"targets": int(targets.sum()), "series": int(keep.sum())}
    for model, f in forecasts.items():
        mae = np.abs(y[targets] - f.mean[targets]).mean(axis=0)
        inside = (y[targets] >= f.lower[targets]) & (y[targets] <= f.upper[targets])
        out[model] = {"mase": round(float((mae[keep] / scale[keep]).mean()), 4),
                      "coverage": round(float(inside[:, keep].mean()), 4),
                      "seconds": seconds[model]}
    best = out["seasonal"]["mase"]
    out["seasonal_vs_snaive"] = round(1 - best / out["snaive"]["mase"], 4)
    out["seasonal_vs_last"] = round(1 - best / out["last"]["mase"], 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    emit({"benchmark": "forecast", "level": LEVEL,
          "results": {topology: run_case(topology, name, days)
                      for topology, name, days in CASES}}, args.out)


if __name__ == "__main__":
    main()
