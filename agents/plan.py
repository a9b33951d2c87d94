"""``ryute plan``: when does each link run out, under which routing, with which failure, and
what one more unit of capacity buys.

The model of the future is deliberately simple and stated: every demand grows by the same
compound rate (fitted on the series' daily mean total demand, or given), so the routing's
split of each OD pair stays what it was on the series, and a link's daily peak utilization
grows by that rate from its *reference peak* (the mean of the last week's daily peaks, each
brought forward to the last day at the growth rate). A link crosses the threshold after
``ln(threshold / reference) / ln(1 + daily growth)`` days.

Routings: the fallback (``invcap`` with ECMP ties, per link), the optimum over the candidate
paths (the LP of ``sim.optimal``: the network's MLU, per day its peak, computed exactly with
the fallback's MLU as an upper bound so that most intervals need no LP) and, with
``--model``, the agent (its MLU, scored by ``ryute evaluate``'s loop). Single link failures
are those of ``ryute evaluate --failures`` (both directions down; a case that strands an OD
pair is skipped and said so).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from agents.evaluate import evaluate, failure_cases
from agents.forecast_cli import add_series_arguments, fallback_loads, load_case, require_interval
from sim.loads import link_loads, mlu, utilization
from sim.optimal import path_optimal
from sim.paths import Link, PathSet
from topologies.traffic import TrafficSeries

LOG = logging.getLogger(__name__)

DAYS_PER_MONTH = 365.25 / 12
#: Growth rates beyond these are refused as given, and warned about when fitted.
GROWTH_LIMITS = (-0.5, 1.0)
#: A day counts when at least this share of its intervals has a measurement.
MIN_DAY_SHARE = 0.5
REFERENCE_DAYS = 7
#: Dates further out than this are reported as "beyond" (the growth model says nothing there).
HORIZON_DAYS = 10 * 365


@dataclass(frozen=True)
class Growth:
    """A compound growth rate of every demand: ``per_month`` (0.05 = 5 %/month)."""

    per_month: float
    source: str
    stderr: float | None = None
    days: int = 0

    @property
    def per_day(self) -> float:
        return (1 + self.per_month) ** (1 / DAYS_PER_MONTH) - 1

    def to_json(self) -> dict[str, Any]:
        return {"per_month": round(self.per_month, 6), "source": self.source,
                "stderr_per_month": None if self.stderr is None else round(self.stderr, 6),
                "days": self.days}


def parse_growth(text: str, series: TrafficSeries, days: Days) -> Growth:
    """``auto`` (fitted on the series) or ``P%/month`` (also ``P%``, per month)."""
    if text.strip() == "auto":
        return fit_growth(series, days)
    match = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)\s*%\s*(?:/\s*(?:month|mo))?\s*", text)
    if not match:
        raise ValueError(f"--growth must be 'auto' or like '5%/month', got {text!r}")
    rate = float(match.group(1)) / 100
    low, high = GROWTH_LIMITS
    if not low <= rate <= high:
        raise ValueError(f"--growth {text}: a rate outside {100 * low:g}..{100 * high:g} %/month "
                         "is not a planning scenario")
    return Growth(rate, "given")


def fit_growth(series: TrafficSeries, days: Days) -> Growth:
    """Least squares of the log of each day's mean total demand over the days: the monthly
    rate and its standard error. Needs three days; warns when it is not significant or
    outside the sane range."""
    totals = series.tm.sum(axis=(1, 2))
    measured = days.measured(series.valid_mask)
    index = [day for day, _ in measured]
    means = [totals[members].mean() for _, members in measured]
    if len(index) < 3:
        raise ValueError(f"--growth auto needs 3 days with measurements, the series has "
                         f"{len(index)}; give a rate, e.g. --growth 5%/month")
    x = np.asarray(index, dtype=np.float64)
    y = np.log(np.maximum(np.asarray(means), 1e-12))
    x0 = x - x.mean()
    slope = float(x0 @ (y - y.mean()) / (x0 @ x0))
    resid = y - y.mean() - slope * x0
    stderr = math.sqrt(float(resid @ resid) / max(1, len(x) - 2) / float(x0 @ x0))
    per_month = math.expm1(slope * DAYS_PER_MONTH)
    err_month = stderr * DAYS_PER_MONTH * (1 + per_month)
    growth = Growth(per_month, "auto", err_month, len(index))
    if not GROWTH_LIMITS[0] <= per_month <= GROWTH_LIMITS[1]:
        LOG.warning("fitted growth %+.1f %%/month over %d days is outside %g..%g %%/month: "
                    "the series is too short or not growing steadily; give --growth",
                    100 * per_month, len(index), *(100 * g for g in GROWTH_LIMITS))
    elif abs(per_month) < 2 * err_month:
        LOG.warning("fitted growth %+.1f %%/month over %d days is within two standard errors "
                    "(%.1f %%/month) of zero", 100 * per_month, len(index), 100 * err_month)
    return growth


@dataclass(frozen=True)
class Days:
    """The calendar day of every interval (``number`` [T], from the times, else counted
    from the start) and how many intervals a whole day has."""

    number: np.ndarray
    per_day: int

    @classmethod
    def of(cls, series: TrafficSeries, interval_s: int) -> Days:
        per_day = max(1, 86400 // interval_s)
        if series.times:
            first = datetime.strptime(series.times[0][:8], "%Y%m%d")
            return cls(np.array([(datetime.strptime(t[:8], "%Y%m%d") - first).days
                                 for t in series.times]), per_day)
        return cls(np.arange(len(series)) * interval_s // 86400, per_day)

    def measured(self, valid: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """``(day, its valid intervals)`` of the days with at least MIN_DAY_SHARE of a whole
        day measured (a partial first or last day does not count)."""
        out = []
        for day in np.unique(self.number):
            members = np.flatnonzero((self.number == day) & valid)
            if len(members) >= MIN_DAY_SHARE * self.per_day:
                out.append((int(day), members))
        return out


def daily_peaks(values: np.ndarray, valid: np.ndarray, days: Days
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(day numbers, peaks [D, X])``: the maximum over each measured day's intervals."""
    measured = days.measured(valid)
    if not measured:
        raise ValueError(f"no day of the series has {100 * MIN_DAY_SHARE:.0f} % of its "
                         f"{days.per_day} intervals measured: no daily peak to plan from")
    return (np.array([day for day, _ in measured]),
            np.array([values[members].max(axis=0) for _, members in measured]))


def reference_peak(day: np.ndarray, peaks: np.ndarray, growth: Growth) -> np.ndarray:
    """The mean of the last week's daily peaks, each brought forward to the last day."""
    recent = slice(-REFERENCE_DAYS, None)
    ahead = (day[-1] - day[recent]).astype(np.float64)
    factor = (1 + growth.per_day) ** ahead
    return np.asarray((peaks[recent] * factor.reshape(-1, *([1] * (peaks.ndim - 1))))
                      .mean(axis=0))


def days_to(reference: np.ndarray | float, threshold: float, growth: Growth) -> np.ndarray:
    """Days from the last day until ``reference`` grows to ``threshold``: 0 when it is there
    already, inf when it never gets there at this growth."""
    ref = np.atleast_1d(np.asarray(reference, dtype=np.float64))
    out = np.full(ref.shape, np.inf)
    out[ref >= threshold] = 0.0
    grows = (ref > 0) & (ref < threshold) & (growth.per_day > 0)
    out[grows] = np.log(threshold / ref[grows]) / math.log1p(growth.per_day)
    return out


def optimum_daily_peaks(path_set: PathSet, tm: np.ndarray, valid: np.ndarray,
                        days: Days, upper: np.ndarray, down: Sequence[Link] = ()
                        ) -> tuple[np.ndarray, np.ndarray, int]:
    """``(peaks [D], peak intervals [D], LPs solved)``: per day the largest MLU of the
    optimum over the candidate paths.

    Exact, with few LPs: an interval is solved only while its upper bound beats the day's best
    optimum so far. The bounds are ``upper`` (the fallback's MLU) and, after every solve, the
    MLU of that optimal split on the day's other intervals (any feasible split bounds the
    optimum from above); the previous day's peak split starts the next day's bounds."""
    peaks, where, solved = [], [], 0
    carried = None
    for _, members in days.measured(valid):
        bound = upper[members].astype(np.float64)
        if carried is not None:
            bound = np.minimum(bound, mlu(path_set, carried, tm[members]))
        best, at, best_split = -1.0, -1, None
        while True:
            i = int(np.argmax(bound))
            if bound[i] <= best:
                break
            value, split = path_optimal(path_set, tm[members[i]], True, down)
            solved += 1
            if value > best:
                best, at, best_split = value, int(members[i]), split
            bound = np.minimum(bound, mlu(path_set, split, tm[members]))
            bound[i] = -np.inf
        carried = best_split
        peaks.append(best)
        where.append(at)
    return np.asarray(peaks), np.asarray(where, dtype=int), solved


def date_after(series: TrafficSeries, day: int, days: float) -> str | None:
    """The calendar date ``days`` after series day ``day`` (None: never, or beyond the
    planning horizon, or a series without times)."""
    if not math.isfinite(days) or days > HORIZON_DAYS or not series.times:
        return None
    first = datetime.strptime(series.times[0][:8], "%Y%m%d")
    return (first + timedelta(days=int(day) + math.ceil(days))).strftime("%Y-%m-%d")


# -- the study ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One network to plan: its graph, path set and series."""

    graph: nx.DiGraph
    path_set: PathSet
    series: TrafficSeries
    days: Days

    @property
    def last_day(self) -> int:
        """The last measured day: the one reference peaks are brought to, dates count from."""
        measured = self.days.measured(self.series.valid_mask)
        if not measured:
            raise ValueError(f"no day of the series has {100 * MIN_DAY_SHARE:.0f} % of its "
                             f"{self.days.per_day} intervals measured: no daily peak to plan "
                             "from")
        return measured[-1][0]


def study(case: Case, growth: Growth, threshold: float, failures: str | None,
          agent: Any = None) -> dict[str, Any]:
    """The saturation timeline of every routing, and the failure study."""
    ps, series = case.path_set, case.series
    valid = series.valid_mask
    loads = fallback_loads(ps, series.tm)
    util = loads / ps.capacities
    day, peaks = daily_peaks(util, valid, case.days)
    ref = reference_peak(day, peaks, growth)
    wait = days_to(ref, threshold, growth)
    links = [_link_row(series, case.last_day, (u, v), float(ps.capacities[j]), float(ref[j]),
                       float(wait[j])) for j, (u, v) in enumerate(ps.edges)]
    result: dict[str, Any] = {"fallback": {"links": links, "first": _first(links)}}
    peaks_opt, where, solved = optimum_daily_peaks(ps, series.tm, valid, case.days,
                                                   util.max(axis=1))
    result["optimum"] = _network(case, growth, threshold, case.days.number[where], peaks_opt, solved,
                                 where)
    if agent is not None:
        agent_day, agent_peaks = daily_peaks(_agent_mlu(case, agent)[:, None], valid, case.days)
        result["agent"] = _network(case, growth, threshold, agent_day, agent_peaks[:, 0])
    if failures:
        result["failures"] = failure_study(case, growth, threshold, failures, ref)
    return result


def _link_row(series: TrafficSeries, last_day: int, link: Link, capacity: float,
              ref: float, wait: float) -> dict[str, Any]:
    return {"link": [str(link[0]), str(link[1])], "capacity_mbps": capacity,
            "peak_utilization": round(ref, 6),
            "days_to_threshold": None if not math.isfinite(wait) else round(wait, 2),
            "date": date_after(series, last_day, wait)}


def _first(links: list[dict[str, Any]]) -> dict[str, Any] | None:
    timed = [row for row in links if row["days_to_threshold"] is not None]
    return min(timed, key=lambda row: row["days_to_threshold"]) if timed else None


def _network(case: Case, growth: Growth, threshold: float, day: np.ndarray, peaks: np.ndarray,
             solved: int | None = None, where: np.ndarray | None = None) -> dict[str, Any]:
    """A routing judged by its network MLU (daily ``peaks`` on days ``day``): the reference
    peak and when it crosses; with ``where`` (each peak's interval), the optimum's
    bottleneck links at the highest one."""
    ref = float(reference_peak(day, peaks, growth))
    wait = float(days_to(ref, threshold, growth)[0])
    out: dict[str, Any] = {
        "peak_mlu": round(ref, 6),
        "days_to_threshold": None if not math.isfinite(wait) else round(wait, 2),
        "date": date_after(case.series, case.last_day, wait)}
    if solved is not None:
        out["lps_solved"] = solved
    if where is not None and len(where):
        t = int(where[np.argmax(peaks)])
        value, decision = path_optimal(case.path_set, case.series.tm[t])
        u = utilization(case.path_set, link_loads(case.path_set, decision, case.series.tm[t]))
        out["bottlenecks"] = [[str(a), str(b)] for (a, b), x in zip(case.path_set.edges, u)
                              if x >= value * (1 - 1e-6)]
        out["bottleneck_interval"] = t
    return out


def _agent_mlu(case: Case, agent: Any) -> np.ndarray:
    """The agent's MLU on every interval (t >= 1), deciding as in ``ryute evaluate``."""
    result = evaluate(case.graph, case.series, case.path_set, {"agent": agent},
                      range(1, len(case.series)))
    values = np.full(len(case.series), np.nan)
    values[result.intervals] = result.mlu["agent"]
    return np.where(np.isfinite(values), values, 0.0)


def failure_study(case: Case, growth: Growth, threshold: float, spec: str,
                  normal: np.ndarray) -> dict[str, Any]:
    """Per link, its worst reference peak over the single link failures (and which), and
    per failure the optimum's peak MLU."""
    ps, series = case.path_set, case.series
    valid = series.valid_mask
    cases, skipped = failure_cases(ps, spec)
    for reason in skipped:
        LOG.warning("failure case skipped: %s", reason)
    worst = np.array(normal, dtype=np.float64)
    worst_case: list[list[list[str]] | None] = [None] * ps.n_links
    optimum: list[dict[str, Any]] = []
    solved = 0
    for down in cases:
        util = fallback_loads(ps, series.tm, down) / ps.capacities
        day, peaks = daily_peaks(util, valid, case.days)
        ref = reference_peak(day, peaks, growth)
        down_names = [[str(a), str(b)] for a, b in down]
        for j in np.flatnonzero(ref > worst):
            worst[j] = ref[j]
            worst_case[j] = down_names
        peaks_opt, where, count = optimum_daily_peaks(ps, series.tm, valid, case.days,
                                                      util.max(axis=1), down)
        solved += count
        opt_ref = float(reference_peak(case.days.number[where], peaks_opt, growth))
        opt_wait = float(days_to(opt_ref, threshold, growth)[0])
        optimum.append({"down": down_names, "peak_mlu": round(opt_ref, 6),
                        "days_to_threshold": None if not math.isfinite(opt_wait)
                        else round(opt_wait, 2)})
    waits = days_to(worst, threshold, growth)
    last_day = case.last_day
    links = [{**_link_row(series, last_day, (u, v), float(ps.capacities[j]), float(worst[j]),
                          float(waits[j])), "worst_failure": worst_case[j]}
             for j, (u, v) in enumerate(ps.edges)]
    optimum_worst = max(optimum, key=lambda r: r["peak_mlu"]) if optimum else None
    return {"cases": len(cases), "skipped": skipped, "links": links, "first": _first(links),
            "optimum": optimum, "optimum_worst": optimum_worst, "lps_solved": solved}


# -- capacity what-if -----------------------------------------------------------------------------
def parse_additions(items: Sequence[str], graph: nx.DiGraph) -> dict[Link, float]:
    """``A-B=CAP`` (new capacity of both directions, Mbit/s) or ``A-B=+CAP`` (added)."""
    names = {f"{u}-{v}": (u, v) for u, v in graph.edges}
    out: dict[Link, float] = {}
    for item in items:
        link, sep, value = item.partition("=")
        if not sep or link.strip() not in names:
            raise ValueError(f"--add must be LINK=CAP with LINK an A-B link of the topology, "
                             f"got {item!r}")
        u, v = names[link.strip()]
        text = value.strip()
        try:
            number = float(text.lstrip("+"))
        except ValueError:
            raise ValueError(f"--add {item}: capacity must be a number of Mbit/s") from None
        capacity = graph.edges[u, v]["capacity_mbps"] + number if text.startswith("+") \
            else number
        if not math.isfinite(capacity) or capacity <= 0:
            raise ValueError(f"--add {item}: the capacity must end up positive")
        out[u, v] = capacity
        if graph.has_edge(v, u):
            out[v, u] = capacity if not text.startswith("+") else \
                graph.edges[v, u]["capacity_mbps"] + number
    return out


def with_capacities(case: Case, capacities: dict[Link, float], paths_k: int, method: str
                    ) -> Case:
    """The case with some links' capacities changed (and its paths rebuilt on them)."""
    graph = case.graph.copy()
    for (u, v), capacity in capacities.items():
        graph.edges[u, v]["capacity_mbps"] = capacity
    return Case(graph, PathSet.from_graph(graph, k=paths_k, method=method), case.series,
                case.days)


# -- command line --------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan", help="when each link's daily peak crosses a threshold, with failures",
        description="The link-saturation timeline: at a uniform compound growth of every "
                    "demand, the day each link's daily peak utilization crosses --threshold "
                    "under the fallback routing, and the network's under the optimum over "
                    "the candidate paths (and the agent with --model); with --failures the "
                    "worst case per link over single link failures; with --add the same "
                    "after a capacity change.")
    add_series_arguments(parser)
    parser.add_argument("--growth", default="auto",
                        help="'auto' (fitted on the daily mean total demand) or e.g. "
                             "'5%%/month' (default auto)")
    parser.add_argument("--threshold", type=float, default=0.8,
                        help="utilization that counts as saturated (default 0.8)")
    parser.add_argument("--failures", help="'n-1' (every single link, both directions) or "
                                           "links 'A-B,C-D'")
    parser.add_argument("--add", action="append", default=[], metavar="LINK=CAP",
                        help="what-if: link A-B with capacity CAP Mbit/s (or +CAP), both "
                             "directions; repeatable")
    parser.add_argument("--model", help="also plan with this agent model ('default': the "
                                        "topology's shipped model or the generalist)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the study as JSON")
    parser.add_argument("--plot", type=Path, metavar="FILE",
                        help="draw the saturation timeline (PNG)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.threshold <= 10:
        raise ValueError(f"--threshold must be a utilization in (0, 10], got {args.threshold}")
    method = "hops"
    if args.model and args.paths_k is None:  # the agent decides on its own paths
        from agents.model_file import model_paths

        args.paths_k, method = model_paths(args.model, args.topology)
    graph, series, path_set = load_case(args, method)
    interval = require_interval(series)
    days = Days.of(series, interval)
    additions = parse_additions(args.add, graph)
    growth = parse_growth(args.growth, series, days)
    case = Case(graph, path_set, series, days)
    agent = None
    if args.model:
        from agents.model_file import make_agent_policy  # torch only when the agent is asked

        agent = make_agent_policy(path_set, graph, args.model, args.topology)
    started = time.perf_counter()
    document: dict[str, Any] = {
        "topology": graph.graph.get("name", args.topology), "traffic": series.source,
        "threshold": args.threshold, "growth": growth.to_json(),
        "history": {"intervals": len(series), "valid": int(series.valid_mask.sum()),
                    "days": len(days.measured(series.valid_mask)),
                    "last": series.times[-1] if series.times else None},
        "assumption": "every demand grows at the same compound rate; routings split as on "
                      "the series; reference: the mean of the last 7 daily peaks",
        "routings": study(case, growth, args.threshold, args.failures, agent)}
    if additions:
        changed = with_capacities(case, additions, path_set.k, path_set.method)
        document["what_if"] = {
            "capacities": [{"link": [str(u), str(v)], "capacity_mbps": c}
                           for (u, v), c in additions.items()],
            "routings": study(changed, growth, args.threshold, args.failures, None)}
    document["seconds"] = round(time.perf_counter() - started, 2)
    print(format_plan(document))
    if args.json:
        args.json.write_text(json.dumps(document, indent=1))
        print(f"JSON written to {args.json}")
    if args.plot:
        plot_timeline(document, args.plot)
        print(f"plot written to {args.plot}")
    return 0


def _when(row: dict[str, Any] | None) -> str:
    if row is None or row.get("days_to_threshold") is None:
        return "never at this growth"
    if row["days_to_threshold"] == 0:
        return "already"
    days = row["days_to_threshold"]
    if days > HORIZON_DAYS:
        return "beyond 10 years"
    date = f" ({row['date']})" if row.get("date") else ""
    return f"in {days:.0f} days{date}"


def format_plan(document: dict[str, Any]) -> str:
    g = document["growth"]
    err = f" +- {100 * g['stderr_per_month']:.1f}" if g["stderr_per_month"] is not None else ""
    lines = [f"growth {100 * g['per_month']:+.2f}{err} %/month ({g['source']}"
             f"{', over %d days' % g['days'] if g['days'] else ''}); threshold "
             f"{document['threshold']:.2f}; {document['history']['days']} days of history"]
    lines += _routing_lines(document["routings"])
    if "what_if" in document:
        changes = ", ".join(f"{'-'.join(c['link'])}={c['capacity_mbps']:g}"
                            for c in document["what_if"]["capacities"])
        lines.append(f"\nwhat-if {changes}:")
        before = document["routings"]["fallback"]["first"]
        after = document["what_if"]["routings"]["fallback"]["first"]
        lines += _routing_lines(document["what_if"]["routings"])
        lines.append(f"first saturation under the fallback: {_when(before)} -> {_when(after)}")
    lines.append(f"({document['seconds']:.1f} s)")
    return "\n".join(lines)


def _routing_lines(routings: dict[str, Any]) -> list[str]:
    fallback = routings["fallback"]
    failures = routings.get("failures")
    worst = {tuple(r["link"]): r for r in failures["links"]} if failures else {}
    head = f"{'link':24} {'peak util':>9}  {'crosses (fallback)':32}"
    if failures:
        head += f" {'worst N-1 util':>14}  {'crosses':24} worst failure"
    lines = ["", head]
    for row in sorted(fallback["links"], key=lambda r: -r["peak_utilization"]):
        line = f"{'-'.join(row['link']):24} {row['peak_utilization']:9.3f}  {_when(row):32}"
        if failures:
            w = worst[tuple(row["link"])]
            down = "-".join(w["worst_failure"][0]) if w["worst_failure"] else "-"
            line += f" {w['peak_utilization']:14.3f}  {_when(w):24} {down}"
        lines.append(line)
    opt = routings["optimum"]
    lines.append(f"\nfallback: first link {_when(fallback['first'])}"
                 + (f" ({'-'.join(fallback['first']['link'])})" if fallback["first"] else ""))
    lines.append(f"optimum over the candidate paths: peak MLU {opt['peak_mlu']:.3f}, crosses "
                 f"{_when(opt)}; bottleneck {', '.join('-'.join(b) for b in opt.get('bottlenecks', []))}")
    if "agent" in routings:
        a = routings["agent"]
        lines.append(f"agent: peak MLU {a['peak_mlu']:.3f}, crosses {_when(a)}")
    if failures:
        lines.append(f"single link failures: {failures['cases']} cases "
                     f"({len(failures['skipped'])} skipped: they strand an OD pair); first "
                     f"link {_when(failures['first'])}")
        ow = failures["optimum_worst"]
        if ow:
            lines.append(f"optimum, worst failure ({'-'.join(ow['down'][0])} down): peak MLU "
                         f"{ow['peak_mlu']:.3f}, crosses {_when(ow)}")
    return lines


def plot_timeline(document: dict[str, Any], path: Path, links: int = 6) -> None:
    """Peak utilization against days ahead: the most loaded links under the fallback (and
    their worst failure, dashed), the optimum's and the agent's MLU, the threshold."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    growth = Growth(document["growth"]["per_month"], "")
    threshold = document["threshold"]
    routings = document["routings"]
    waits = [r["days_to_threshold"] for r in routings["fallback"]["links"]
             if r["days_to_threshold"]]
    span = min(HORIZON_DAYS, max(90.0, 1.3 * min(waits))) if waits else 365.0
    x = np.linspace(0, span, 200)
    factor = (1 + growth.per_day) ** x
    figure, axes = plt.subplots(figsize=(9, 5))
    top = sorted(routings["fallback"]["links"], key=lambda r: -r["peak_utilization"])[:links]
    worst = {tuple(r["link"]): r for r in routings.get("failures", {}).get("links", [])}
    for row in top:
        line, = axes.plot(x, row["peak_utilization"] * factor, label=f"{'-'.join(row['link'])}"
                          " (fallback)")
        w = worst.get(tuple(row["link"]))
        if w and w["peak_utilization"] > row["peak_utilization"]:
            axes.plot(x, w["peak_utilization"] * factor, linestyle="--", color=line.get_color(),
                      label=f"{'-'.join(row['link'])}, worst single failure")
    axes.plot(x, routings["optimum"]["peak_mlu"] * factor, color="black", linewidth=2,
              label="optimum over candidate paths (MLU)")
    if "agent" in routings:
        axes.plot(x, routings["agent"]["peak_mlu"] * factor, color="grey", linewidth=2,
                  label="agent (MLU)")
    axes.axhline(threshold, color="red", linestyle=":", label=f"threshold {threshold:g}")
    axes.set_xlabel(f"days after {document['history']['last'] or 'the series'} "
                    f"(growth {100 * growth.per_month:+.1f} %/month)")
    axes.set_ylabel("daily peak utilization (load / capacity)")
    axes.set_title(f"Link saturation timeline: {document['topology']}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
