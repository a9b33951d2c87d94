"""``ryute anomalies``: alerts on a traffic series, per OD pair, per link (the fallback's
loads) and on the total demand, from the detectors of ``sim.anomaly``.

The detectors are fitted on the first part of the series (``--fit``), and their thresholds
calibrated there so that all series together would raise at most ``--alerts-per-day``; the
alerts are then reported for the whole series after its first day (those inside the fitting
part are in-sample).
"""
from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from agents.forecast_cli import Telemetry, add_series_arguments, load_case, require_interval
from sim.anomaly import DETECTORS, MIN_SHARE, Alert, alerts, calibrate, scores, significant
from sim.forecast import ForecastError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "anomalies", help="alerts on OD pairs, links and the total demand of a series",
        description="Spikes, drops and OD pairs going dark, against the seasonal forecast "
                    "(or the seasonal MAD threshold, or the PCA subspace method), with "
                    "thresholds calibrated on the first part of the series.")
    add_series_arguments(parser)
    parser.add_argument("--detector", default="forecast", choices=DETECTORS,
                        help="forecast (default), mad or pca")
    parser.add_argument("--fit", default="auto",
                        help="the first part the detectors learn from: P%% of the series or "
                             "N days (default auto: half of it, at least 2 days)")
    parser.add_argument("--alerts-per-day", type=float, default=1.0,
                        help="the false-alarm budget the thresholds are set for, over all "
                             "series together (default 1)")
    parser.add_argument("--min-share", type=float, default=MIN_SHARE,
                        help="series below this share of their kind's traffic raise no alert "
                             f"(default {MIN_SHARE:g})")
    parser.add_argument("--top", type=int, default=20, help="alerts printed (default 20)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every alert as JSON")
    parser.set_defaults(func=run)


def fit_intervals(text: str, length: int, per_day: int) -> int:
    """``--fit``: P % of the series or N days, in intervals; at least two days (``auto``:
    half of the series, at least two days)."""
    if text.strip() == "auto":
        text = f"{max(length // 2, 2 * per_day) / per_day}d"
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%|d|days?)?\s*", text)
    if not match:
        raise ValueError(f"--fit must be a percentage or a number of days, got {text!r}")
    value = float(match.group(1))
    count = math.floor(length * value / 100) if match.group(2) == "%" else \
        round(value * per_day)
    if count < 2 * per_day:
        raise ForecastError(f"--fit {text} leaves {count} intervals to learn from; at least "
                            f"two days ({2 * per_day}) are needed")
    return min(count, length)


def run(args: argparse.Namespace) -> int:
    if not args.alerts_per_day > 0:
        raise ValueError(f"--alerts-per-day must be positive, got {args.alerts_per_day}")
    if not 0 <= args.min_share < 1:
        raise ValueError(f"--min-share must be in [0, 1), got {args.min_share}")
    graph, series, path_set = load_case(args)
    require_interval(series)
    data = Telemetry.of(series, path_set)
    season = data.season
    if season is None:
        raise ForecastError(f"{series.source}: an interval of {series.interval_s} s does not "
                            "divide a day: no daily cycle to judge against")
    fit = fit_intervals(args.fit, len(series), season.period)
    if not data.od[:fit][data.valid[:fit]].any():
        raise ForecastError(f"{series.source}: no demand in the fitting part")
    groups = {"od": data.od, "link": data.links,
              "total": data.od.sum(axis=1, keepdims=True)}
    total_series = sum(values.shape[1] for values in groups.values())
    window = slice(season.period, None)
    merge = max(1, season.period // 24)  # runs within an hour are one incident
    found: list[dict[str, Any]] = []
    thresholds: dict[str, float | None] = {}
    for group, values in groups.items():
        detector = "forecast" if args.detector == "pca" and group != "od" else args.detector
        s = scores(detector, values, data.valid, season, fit)
        keep = significant(values, data.valid, fit, args.min_share) if not s.network else None
        share = args.alerts_per_day * values.shape[1] / total_series
        threshold = calibrate(s, slice(season.period + 1, fit), share, season.period, merge,
                              keep)
        finite = threshold[np.isfinite(threshold)]
        thresholds[group] = round(float(np.median(finite)), 3) if len(finite) else None
        for alert in alerts(s, values, threshold, window, merge):
            found.append(alert_record(alert, group, s.network, data, fit))
    found.sort(key=lambda a: (a["interval"], -a["severity"]))
    document = {
        "topology": graph.graph.get("name", args.topology), "traffic": series.source,
        "detector": args.detector, "alerts_per_day": args.alerts_per_day,
        "fit": {"intervals": fit, "last": series.times[fit - 1] if series.times else None},
        "thresholds_median": thresholds, "count": len(found), "alerts": found}
    print(format_alerts(document, args.top))
    if args.json:
        args.json.write_text(json.dumps(document, indent=1))
        print(f"JSON written to {args.json}")
    return 0


def alert_record(alert: Alert, group: str, network: bool, data: Telemetry, fit: int
                 ) -> dict[str, Any]:
    """The JSON of one alert: interval, time, kind, od / link / total, score, reason."""
    ps, series = data.path_set, data.series
    if network:
        kind = "network"
    elif alert.value == 0 and alert.expected > 0:
        kind = "dark"
    else:
        kind = "spike" if alert.score > 0 else "drop"
    record: dict[str, Any] = {
        "interval": alert.start,
        "time": series.times[alert.start] if series.times else None,
        "kind": kind, "score": round(alert.score, 3),
        "severity": round(alert.severity, 3),
        "value_mbps": round(alert.value, 3), "expected_mbps": round(alert.expected, 3),
        "intervals": alert.length, "in_fit": alert.start < fit}
    if group == "od":
        s, d = ps.od_pairs[alert.column]
        record["od"] = [str(s), str(d)]
        name = f"OD {s}->{d}"
    elif group == "link":
        u, v = ps.edges[alert.column]
        record["link"] = [str(u), str(v)]
        name = f"link {u}-{v} (fallback routing)"
    else:
        record["total"] = True
        name = "total demand"
    ratio = alert.value / alert.expected if alert.expected > 0 else math.inf
    what = {"dark": "went dark", "network": "breaks the network-wide pattern",
            "spike": "rose", "drop": "fell"}[kind]
    record["reason"] = (f"{name} {what}: {alert.value:.1f} Mbit/s where {alert.expected:.1f} "
                        f"was expected (x{ratio:.2f}), over {alert.length} interval(s)")
    return record


def format_alerts(document: dict[str, Any], top: int) -> str:
    lines = [f"{document['count']} alerts ({document['detector']} detector, thresholds set "
             f"for {document['alerts_per_day']:g} a day on the first {document['fit']['intervals']} "
             f"intervals)"]
    ranked = sorted(document["alerts"], key=lambda a: -a["severity"])[:max(0, top)]
    if ranked:
        lines.append(f"the {len(ranked)} strongest (severity: score over its threshold):")
    for a in sorted(ranked, key=lambda a: a["interval"]):
        when = a["time"] or f"interval {a['interval']}"
        lines.append(f"{when:14} {a['kind']:8} x{a['severity']:<7.1f} {a['reason']}")
    return "\n".join(lines)
