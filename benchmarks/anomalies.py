"""Anomaly detection on the shared real series with injected anomalies: recall, precision
and false alarms per day, for the forecast-residual detector, the seasonal MAD threshold and
the PCA subspace method in the same run.

    .venv/bin/python -m benchmarks.anomalies [--out benchmarks/results/anomalies.json]

The held-out tail (Abilene: the last 3 days after 11; GEANT: the last day) gets injected
anomalies on random OD pairs at random times (one copy of the series per kind and size):
``spike`` (+k sigma for 1 to 6 intervals; 1 to 4 at 15 minutes), ``drop`` (-k sigma, not
below zero, as long), ``dark`` (the OD pair's demand zero, as long: an ingress going dark)
and ``shift`` (+k sigma from its start to the end), k in 2, 3, 5, 10, where sigma is the OD
pair's normal variability: 1.4826 x the median absolute deviation of its demand from its
per-phase median over the days before the tail (Mbit/s). Every detector is fitted on the days
before the tail, and its threshold calibrated there to at most 1 alert a day over the OD
pairs that carry at least 0.1 % of the traffic (the others raise no alert and get no
injection). An injected anomaly is found when an alert of its OD pair starts during it or up to 2
intervals after (for the network-wide PCA method: any alert, and how often it names the OD
pair is reported beside); alerts matching no injection are false alarms, except those the
clean tail raises too (its own, unlabelled anomalies, such as the 10-fold rise of the traffic
to Houston on 2004-03-14: reported as ``clean_alerts_per_day``).
"""
from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from agents.forecast_cli import Telemetry
from benchmarks.common import emit, shared_case
from sim.anomaly import DETECTORS, MAD_SIGMA, alerts, calibrate, scores, significant
from sim.paths import PathSet

CASES = [
    ("abilene", "abilene-20040301-20040314.tm.npz", 3, 48),
    ("geant", "geant-20050504-20050507.tm.npz", 1, 24),
]
KINDS = ("spike", "drop", "dark", "shift")
SIZES = (2.0, 3.0, 5.0, 10.0)
BUDGET = 1.0
GRACE = 2


def variability(y: np.ndarray, valid: np.ndarray, period: int, phase0: int, end: int
                ) -> np.ndarray:
    """Per OD pair: 1.4826 x the median absolute deviation from its per-phase median."""
    phases = (np.arange(len(y)) + phase0) % period
    ok = valid.copy()
    ok[end:] = False
    dev = np.zeros_like(y)
    for p in range(period):
        members = ok & (phases == p)
        dev[members] = y[members] - np.median(y[members], axis=0)
    return MAD_SIGMA * np.median(np.abs(dev[ok]), axis=0)


def inject(y: np.ndarray, sigma: np.ndarray, kind: str, size: float, start: int,
           count: int, longest: int, rng: np.random.Generator, keep: np.ndarray
           ) -> tuple[np.ndarray, list]:
    """A copy of ``y`` with ``count`` anomalies in [start, T) on the OD pairs of ``keep``;
    events (od, first, last)."""
    out = y.copy()
    eligible = np.flatnonzero((sigma > 0) & keep)
    busy: dict[int, list[tuple[int, int]]] = {}
    events = []
    while len(events) < count:
        od = int(rng.choice(eligible))
        length = len(y) - start if kind == "shift" else int(rng.integers(1, longest + 1))
        first = int(rng.integers(start + 1, len(y) - (longest if kind != "shift" else 12)))
        last = len(y) - 1 if kind == "shift" else first + length - 1
        if any(a - 12 <= last and first <= b + 12 for a, b in busy.get(od, [])):
            continue
        busy.setdefault(od, []).append((first, last))
        part = slice(first, last + 1)
        if kind in ("spike", "shift"):
            out[part, od] += size * sigma[od]
        elif kind == "drop":
            out[part, od] = np.maximum(out[part, od] - size * sigma[od], 0.0)
        else:
            out[part, od] = 0.0
        events.append((od, first, last))
    return out, events


def evaluate_alerts(found, events, network: bool, days: float, natural) -> dict[str, Any]:
    """Recall over the injected events; precision and false alarms over the alerts that the
    clean tail does not raise as well (those are the series' own anomalies, unlabelled)."""
    known = {(a.column, a.start) for a in natural}
    raised = len(found)
    found = [a for a in found if not any((a.column, a.start + d) in known
                                          for d in range(-GRACE, GRACE + 1))]
    hit = np.zeros(len(events), bool)
    named = np.zeros(len(events), bool)
    matched = 0
    for alert in found:
        good = False
        for i, (od, first, last) in enumerate(events):
            if first <= alert.start <= last + GRACE and (network or alert.column == od):
                hit[i] = True
                named[i] |= alert.column == od
                good = True
        matched += good
    out = {"recall": round(float(hit.mean()), 3),
           "precision": round(matched / len(found), 3) if found else None,
           "false_alarms_per_day": round((len(found) - matched) / days, 2),
           "alerts_per_day": round(raised / days, 2)}
    if network:
        out["names_the_od"] = round(float(named.mean()), 3)
    return out


def run_case(topology: str, traffic_name: str, test_days: int, count: int) -> dict[str, Any]:
    case = shared_case(topology, traffic_name)
    if case is None:
        return {"skipped": f"{traffic_name} not found in the shared data folder"}
    graph, series = case
    data = Telemetry.of(series, PathSet.from_graph(graph, k=4))
    season = data.season
    assert season is not None
    y, valid = data.od, data.valid
    start = len(y) - test_days * season.period
    fit = slice(season.period + 1, start)
    test = slice(start, None)
    sigma = variability(y, valid, season.period, season.phase0, start)
    longest = max(1, min(6, 3600 * 6 // (12 * (series.interval_s or 300))))
    result: dict[str, Any] = {"traffic": traffic_name, "test": [series.times[start],
                                                                series.times[-1]],
                              "events_per_copy": count, "detectors": {}}
    rng = np.random.default_rng(18)
    merge = max(1, season.period // 24)  # runs within an hour are one alert, as the command
    keep = significant(y, valid, start)
    result["od_pairs"] = {"all": int(len(keep)), "alerting": int(keep.sum())}
    copies = {(kind, size): inject(y, sigma, kind, size, start, count, longest, rng, keep)
              for kind in KINDS for size in (SIZES if kind != "dark" else (0.0,))}
    for detector in DETECTORS:
        clean = scores(detector, y, valid, season, start)
        threshold = calibrate(clean, fit, BUDGET, season.period, merge,
                              None if clean.network else keep)
        natural = alerts(clean, y, threshold, test, merge)
        entry: dict[str, Any] = {
            "threshold_median": round(float(np.median(threshold[np.isfinite(threshold)])), 3),
            "clean_alerts_per_day": round(len(natural) / test_days, 2),
            "cases": {}}
        for (kind, size), (injected, events) in copies.items():
            s = scores(detector, injected, valid, season, start)
            found = alerts(s, injected, threshold, test, merge)
            name = kind if kind == "dark" else f"{kind} {size:g} sigma"
            entry["cases"][name] = evaluate_alerts(found, events, s.network, test_days,
                                                     natural)
        result["detectors"][detector] = entry
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    emit({"benchmark": "anomalies", "alert_budget_per_day": BUDGET,
          "results": {topology: run_case(topology, name, days, count)
                      for topology, name, days, count in CASES}}, args.out)


if __name__ == "__main__":
    main()
