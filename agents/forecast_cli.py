"""``ryute forecast``: per OD pair and per link, the traffic of the next intervals with
prediction intervals (the models are ``sim.forecast``'s).

Link loads are those of the fallback routing (``invcap`` with ECMP ties, every link up): what
the controller installs when the agent does not decide, and what a planner must assume. They
are forecast as series of their own, so their intervals are their own errors' spread.
"""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import fallback_policy
from sim.forecast import MODELS, Forecast, ForecastError, Season, forecast, parse_horizon
from sim.loads import link_loads, od_demands
from sim.paths import Link, PathSet
from topologies.traffic import TIME_FORMAT, TrafficSeries

LOG = logging.getLogger(__name__)

#: At most this many steps of a forecast path go into the JSON (a long horizon is thinned).
JSON_STEPS = 288


@dataclass(frozen=True)
class Telemetry:
    """A series as forecastable columns: OD demands and the fallback's link loads [T, *]."""

    series: TrafficSeries
    path_set: PathSet
    od: np.ndarray
    links: np.ndarray

    @classmethod
    def of(cls, series: TrafficSeries, path_set: PathSet,
           down: Sequence[Link] = ()) -> Telemetry:
        return cls(series, path_set, od_demands(path_set, series.tm),
                   fallback_loads(path_set, series.tm, down))

    @property
    def valid(self) -> np.ndarray:
        return self.series.valid_mask

    @property
    def season(self) -> Season | None:
        times = self.series.times
        return Season.daily(self.series.interval_s, times[0] if times else None)


def fallback_loads(path_set: PathSet, tm: np.ndarray, down: Sequence[Link] = ()) -> np.ndarray:
    """Link loads [T, L] (Mbit/s) of every matrix under the fallback with ``down`` down."""
    decision = fallback_policy(path_set).decision(down)
    return np.atleast_2d(link_loads(path_set, decision, tm))


def require_interval(series: TrafficSeries) -> int:
    """The series' seconds per interval; a series without one cannot be put on a clock."""
    if not series.interval_s:
        raise ForecastError(f"{series.source}: the series has no interval_s: cannot tell "
                            "how long an interval is")
    return series.interval_s


def future_times(series: TrafficSeries, steps: np.ndarray) -> list[str]:
    """``YYYYMMDD-HHMM`` of the intervals ``steps`` after the newest (empty without times)."""
    if not series.times or not series.interval_s:
        return []
    last = datetime.strptime(series.times[-1], TIME_FORMAT)
    return [(last + timedelta(seconds=int(h) * series.interval_s)).strftime(TIME_FORMAT)
            for h in steps]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "forecast", help="forecast OD demands and link loads with prediction intervals",
        description="Per OD pair and per link (loads under the fallback routing), the "
                    "forecast of the next intervals up to --horizon, with prediction "
                    "intervals from the model's own past errors.")
    add_series_arguments(parser)
    parser.add_argument("--horizon", default="1h",
                        help="how far ahead: 5m, 1h, 1d, 4w, or a number of intervals "
                             "(default 1h)")
    parser.add_argument("--model", default="seasonal", choices=MODELS,
                        help="seasonal (default), snaive or last")
    parser.add_argument("--level", type=float, default=0.9,
                        help="prediction interval level (default 0.9)")
    parser.add_argument("--top", type=int, default=10,
                        help="OD pairs shown in the table (default 10, by demand)")
    parser.add_argument("--json", type=Path, metavar="OUT",
                        help="write every OD pair's and link's forecast as JSON here")
    parser.set_defaults(func=run)


def add_series_arguments(parser: argparse.ArgumentParser) -> None:
    """``--topology``, ``--traffic``, ``--paths-k``: what forecast, plan and anomalies share."""
    parser.add_argument("--topology", required=True, help="catalog name or topology file")
    parser.add_argument("--traffic", required=True,
                        help="a .tm.npz series (e.g. a controller recording), or "
                             "'synthetic[:steps=N,seed=S,load=L]'")
    parser.add_argument("--paths-k", type=int,
                        help="candidate paths per OD pair (default 4 min-hop paths; with "
                             "--model, the model's own)")


def load_case(args: argparse.Namespace, method: str = "hops"
              ) -> tuple[Any, TrafficSeries, PathSet]:
    """The topology, the series aligned to it and the path set of the shared arguments
    (``--paths-k`` candidates by ``method``, 4 when not given)."""
    from topologies.catalog import load_topology
    from topologies.traffic import load_series

    graph = load_topology(args.topology)
    series = load_series(args.traffic, graph)
    if args.paths_k is not None and args.paths_k < 1:
        raise ValueError(f"--paths-k must be >= 1, got {args.paths_k}")
    return graph, series, PathSet.from_graph(graph, k=args.paths_k or 4, method=method)


def run(args: argparse.Namespace) -> int:
    graph, series, path_set = load_case(args)
    interval = require_interval(series)
    horizon = parse_horizon(args.horizon, interval)
    data = Telemetry.of(series, path_set)
    od = forecast(data.od, data.valid, horizon, args.model, data.season, args.level)
    links = forecast(data.links, data.valid, horizon, args.model, data.season, args.level)
    document = forecast_document(data, od, links, args.horizon, horizon,
                                 topology=graph.graph.get("name", args.topology))
    print(format_forecast(document, args.top))
    if args.json:
        args.json.write_text(json.dumps(document, indent=1))
        print(f"JSON written to {args.json}")
    return 0


def forecast_document(data: Telemetry, od: Forecast, links: Forecast, text: str, horizon: int,
                      **context: Any) -> dict[str, Any]:
    """The JSON of ``ryute forecast``: per OD pair and link the values with their intervals,
    the model and the history it had."""
    series, ps = data.series, data.path_set
    steps = np.arange(1, horizon + 1)
    keep = np.unique(np.r_[np.linspace(0, horizon - 1, min(horizon, JSON_STEPS)).round()
                           .astype(int), horizon - 1])

    def rows(result: Forecast) -> dict[str, list[float]]:
        return {key: getattr(result, key)[keep].round(6).T.tolist()
                for key in ("mean", "lower", "upper")}

    od_rows, link_rows = rows(od), rows(links)
    last = int(np.flatnonzero(data.valid)[-1])
    return {
        **context, "traffic": series.source, "model": od.model, "level": od.level,
        "routing": "invcap with ECMP ties (the fallback), every link up",
        "horizon": {"text": text, "intervals": horizon,
                    "seconds": horizon * (series.interval_s or 0)},
        "history": {"intervals": len(series), "valid": od.history,
                    "days": round(od.history * (series.interval_s or 0) / 86400, 2),
                    "first": series.times[0] if series.times else None,
                    "last": series.times[-1] if series.times else None},
        "daily_cycle": od.period is not None, "weekly_cycle": od.weekly,
        "notes": list(od.notes),
        "steps": steps[keep].tolist(), "times": future_times(series, steps[keep]),
        "od": [{"od": [str(s), str(d)], "last": round(float(data.od[last, i]), 6),
                **{key: od_rows[key][i] for key in od_rows}}
               for i, (s, d) in enumerate(ps.od_pairs)],
        "links": [{"link": [str(u), str(v)], "capacity_mbps": float(ps.capacities[j]),
                   "last": round(float(data.links[last, j]), 6),
                   **{key: link_rows[key][j] for key in link_rows},
                   "peak_utilization": round(float(links.mean[:, j].max()
                                                   / ps.capacities[j]), 6),
                   "peak_utilization_upper": round(float(links.upper[:, j].max()
                                                         / ps.capacities[j]), 6)}
                  for j, (u, v) in enumerate(ps.edges)],
    }


def format_forecast(document: dict[str, Any], top: int) -> str:
    history = document["history"]
    level = round(100 * document["level"])
    lines = [f"{document['model']} forecast, {document['horizon']['text']} ahead "
             f"({document['horizon']['intervals']} intervals), from {history['valid']} valid "
             f"intervals ({history['days']} days); daily cycle "
             f"{'yes' if document['daily_cycle'] else 'no'}, weekly "
             f"{'yes' if document['weekly_cycle'] else 'no'}"]
    lines += [f"note: {note}" for note in document["notes"]]
    lines.append(f"\nlinks (fallback routing), at {document['horizon']['text']} "
                 f"[{level} % interval], by forecast peak utilization:")
    lines.append(f"{'link':24} {'Mbit/s now':>11} {'forecast':>10} {'low':>10} {'high':>10} "
                 f"{'peak util':>9}")
    for link in sorted(document["links"], key=lambda r: -r["peak_utilization"]):
        name = "-".join(link["link"])
        lines.append(f"{name:24} {link['last']:11.1f} {link['mean'][-1]:10.1f} "
                     f"{link['lower'][-1]:10.1f} {link['upper'][-1]:10.1f} "
                     f"{link['peak_utilization']:9.3f}")
    shown = sorted(document["od"], key=lambda r: -r["last"])[:max(0, top)]
    if shown:
        lines.append(f"\nOD pairs (top {len(shown)} by current demand), Mbit/s at "
                     f"{document['horizon']['text']}:")
        lines.append(f"{'OD pair':24} {'now':>10} {'forecast':>10} {'low':>10} {'high':>10}")
        for row in shown:
            name = "->".join(row["od"])
            lines.append(f"{name:24} {row['last']:10.1f} {row['mean'][-1]:10.1f} "
                         f"{row['lower'][-1]:10.1f} {row['upper'][-1]:10.1f}")
    return "\n".join(lines)
