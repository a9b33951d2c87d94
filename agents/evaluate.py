"""``ryute evaluate``: how close to optimal each routing method is on a traffic series.

For every evaluated interval t (t >= 1, matrix t measured), each method decides from a
``NetworkState`` that holds only the matrices before t (and the link loads its own previous
decision produced), exactly as in the controller; its decision is scored on matrix t with the
TE core's fluid model: MLU, and MLU / optimal MLU (the all-paths multi-commodity LP optimum).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from agents.baselines import BASELINES, make_policy
from sim.loads import link_loads, mlu
from sim.optimal import optimal_series
from sim.paths import DEFAULT_K, DEFAULT_METHOD, Link, PathSet
from sim.paths import METHODS as PATH_METHODS
from sim.policy import Policy
from sim.state import DEFAULT_HISTORY, NetworkState
from topologies.traffic import TrafficError, TrafficSeries, load_series

LOG = logging.getLogger(__name__)

DEFAULT_METHODS = ("sp", "ecmp", "invcap", "lp_last")
QUANTILES = {"p50": 50, "p90": 90, "p99": 99}


@dataclass(frozen=True)
class Evaluation:
    """Raw results: one entry per evaluated interval, NaN where a matrix was skipped."""

    intervals: np.ndarray
    times: tuple[str, ...]
    optimal: np.ndarray
    mlu: dict[str, np.ndarray]
    decision_ms: dict[str, np.ndarray]
    optimal_candidates: np.ndarray | None = None

    def ratios(self, method: str) -> np.ndarray:
        return self.mlu[method] / self.optimal

    def summary(self, method: str) -> dict[str, Any]:
        ratios = self.ratios(method)
        ratios = ratios[np.isfinite(ratios)]
        times = self.decision_ms[method]
        times = times[np.isfinite(times)]
        return {
            "ratio": {"mean": _stat(np.mean, ratios), **{
                name: _stat(lambda r, q=q: np.percentile(r, q), ratios)
                for name, q in QUANTILES.items()}, "max": _stat(np.max, ratios)},
            "mlu": _mlu_summary(self.mlu[method]),
            "decision_ms": {"mean": _stat(np.mean, times),
                            "p99": _stat(lambda r: np.percentile(r, 99), times)},
            "per_tm": _nullable(self.mlu[method]),
        }

    def to_json(self, **context: Any) -> dict[str, Any]:
        document = {
            **context,
            "intervals": self.intervals.tolist(),
            "times": list(self.times),
            "optimal": _nullable(self.optimal),
            "optimal_mlu": _mlu_summary(self.optimal),
            "methods": {name: self.summary(name) for name in self.mlu},
        }
        if self.optimal_candidates is not None:
            document["optimal_candidates"] = _nullable(self.optimal_candidates)
            ratio = self.optimal_candidates / self.optimal
            document["optimal_candidates_ratio_max"] = _stat(np.max, ratio[np.isfinite(ratio)])
        return document


def _mlu_summary(values: np.ndarray) -> dict[str, float | None]:
    """Mean and max of the absolute MLU over the intervals with a measurement."""
    values = values[np.isfinite(values)]
    return {"mean": _stat(np.mean, values), "max": _stat(np.max, values)}


def _stat(function: Callable, values: np.ndarray) -> float | None:
    return float(function(values)) if len(values) else None


def _nullable(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def evaluate(
    graph: nx.DiGraph,
    series: TrafficSeries,
    path_set: PathSet,
    policies: Mapping[str, Policy],
    intervals: Sequence[int] | np.ndarray,
    history_len: int = DEFAULT_HISTORY,
    path_optimum: bool = False,
    progress: bool = False,
    down_links: Sequence[Link] = (),
) -> Evaluation:
    """Score every policy on ``intervals`` of ``series`` (already aligned to ``graph``), with
    ``down_links`` down throughout (and the optimum computed without them)."""
    intervals = np.asarray([t for t in intervals if t >= 1], dtype=int)
    if len(intervals) == 0:
        raise TrafficError(f"{series.source}: no interval to evaluate (need t >= 1)")
    valid = series.valid_mask
    tm = series.tm
    states = {name: NetworkState(graph.copy(), path_set, history_len) for name in policies}
    for state in states.values():
        for u, v in down_links:
            state.set_link_up(u, v, False)
    results = {name: np.full(len(intervals), np.nan) for name in policies}
    timings = {name: np.full(len(intervals), np.nan) for name in policies}

    position = {int(t): i for i, t in enumerate(intervals)}
    for t in _progress(range(int(intervals[-1]) + 1), progress, "deciding"):
        i = position.get(t)
        if i is not None and valid[t]:
            for name, policy in policies.items():
                state = states[name]
                started = time.perf_counter()
                decision = policy.decide(state)
                timings[name][i] = (time.perf_counter() - started) * 1000
                results[name][i] = mlu(path_set, decision, tm[t])
                state.set_loads(link_loads(path_set, decision, tm[t]))
        if valid[t]:  # the next decision may use this matrix; missing ones are never used
            for state in states.values():
                state.push_matrix(tm[t])

    chosen = tm[intervals]
    optimal = optimal_series(graph, chosen, down_links=down_links,
                             progress=lp_progress(progress, "optimum"))
    candidates = (optimal_series(path_set, chosen, down_links=down_links,
                                 progress=lp_progress(progress, "path optimum"))
                  if path_optimum else None)
    times = tuple(series.times[t] for t in intervals) if series.times else ()
    return Evaluation(np.asarray(intervals), times, optimal, results, timings, candidates)


def _progress(iterable, enabled: bool, label: str):
    if not enabled:
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, desc=label, unit="tm", leave=False, disable=None)


def lp_progress(enabled: bool, label: str) -> Callable[[int, int], None] | None:
    """A progress callback for the LP solves (only the ones not found in the cache)."""
    if not enabled:
        return None
    from tqdm import tqdm
    bar: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=label, unit="LP", leave=False, disable=None)
        bar["bar"].update(1)
        if done >= total:
            bar["bar"].close()
    return update


# -- test windows ----------------------------------------------------------------------------
def select_intervals(series: TrafficSeries, last: str | None) -> list[int]:
    """The evaluated intervals: all (t >= 1), or the last N (``"576"``) or last F % (``"20%"``)."""
    count = len(series)
    if not last:
        return list(range(1, count))
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", last)
    if not match:
        raise ValueError(f"--last must be a number of intervals or a percentage, got {last!r}")
    number, percent = float(match.group(1)), bool(match.group(2))
    size = math.floor(count * number / 100) if percent else int(number)
    if size < 1:
        raise ValueError(f"--last {last} selects no interval of {count}")
    return list(range(max(1, count - size), count))


# -- command line ----------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score routing methods against the LP optimum on a traffic series",
        description="For every interval t, each method decides from the matrices before t and "
                    "is scored on matrix t: MLU / optimal MLU.")
    parser.add_argument("--topology", required=True, help="catalog name or topology file")
    parser.add_argument("--traffic", required=True,
                        help="a .tm.npz series, or 'synthetic[:steps=N,seed=S,load=L]' "
                             "(the project's generator)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated, from {','.join(BASELINES)},agent "
                             f"(default {','.join(DEFAULT_METHODS)})")
    parser.add_argument("--model", default="default",
                        help="model file of the agent, or 'default' (the shipped model of the "
                             "topology)")
    parser.add_argument("--transfer", action="store_true",
                        help="let a topology-aware model (network 'path') trained on another "
                             "topology decide on this one")
    parser.add_argument("--adapt", action="store_true",
                        help="fine-tune the agent in operation, on matrices before each "
                             "decision only")
    parser.add_argument("--paths-k", type=int,
                        help="candidate paths per OD pair (default: the agent model's, else 4)")
    parser.add_argument("--path-method", choices=PATH_METHODS,
                        help="how candidate paths are chosen (default: the agent model's, else "
                             "hops)")
    parser.add_argument("--last", help="evaluate only the last N intervals, or the last P%% "
                                       "(e.g. 576 or 20%%); default: the whole series")
    parser.add_argument("--history", type=int, default=DEFAULT_HISTORY,
                        help=f"matrices a method may look back on (default {DEFAULT_HISTORY})")
    parser.add_argument("--steps", type=int, default=288,
                        help="length of a synthetic series (default 288 = one day of 5 min)")
    parser.add_argument("--seed", type=int, default=0, help="seed of a synthetic series")
    parser.add_argument("--path-optimum", action="store_true",
                        help="also solve the optimum restricted to the candidate paths")
    parser.add_argument("--failures", help="'n-1': also score every method with each single "
                                           "link down (both directions), against the optimum "
                                           "with that link down; or links 'A-B,C-D'")
    parser.add_argument("--json", type=Path, help="write the full results as JSON here")
    parser.add_argument("--plot", type=Path, help="draw the ratio CDF of all methods (PNG)")
    parser.set_defaults(func=run)


def failure_cases(path_set: PathSet, spec: str) -> tuple[list[tuple[Link, ...]], list[str]]:
    """``(cases, skipped)`` of ``--failures``: one case per physical link (both directions
    down), ``"n-1"`` for every link or ``"A-B,C-D"`` for those; a link whose loss leaves some
    OD pair without a candidate path is skipped, with the reason."""
    links: list[Link]
    if spec.strip() == "n-1":
        links = [(u, v) for u, v in path_set.edges if not path_set.has_link(v, u) or
                 path_set.node_index(u) < path_set.node_index(v)]
    else:
        by_name = {f"{u}-{v}": (u, v) for u, v in path_set.edges}  # names may hold a '-'
        links = []
        for item in (x.strip() for x in spec.split(",") if x.strip()):
            if item not in by_name:
                raise ValueError(f"--failures: {item!r} is not a link A-B of the topology "
                                 "(or use n-1)")
            links.append(by_name[item])
    cases: list[tuple[Link, ...]] = []
    skipped: list[str] = []
    for u, v in links:
        down = both_ways(path_set, (u, v))
        stranded = stranded_ods(path_set, down)
        if len(stranded):
            s, d = path_set.od_pairs[int(stranded[0])]
            skipped.append(f"{u}-{v}: leaves {s}->{d} without a candidate path")
        else:
            cases.append(down)
    return cases, skipped


def both_ways(path_set: PathSet, link: Link) -> tuple[Link, ...]:
    """A physical link's directions that the path set has (a failure takes down both)."""
    u, v = link
    return tuple(e for e in ((u, v), (v, u)) if path_set.has_link(*e))


def stranded_ods(path_set: PathSet, down: Sequence[Link]) -> np.ndarray:
    """OD pairs left without a live candidate path when ``down`` fail: the agent's decoder and
    the path-restricted optimum need one (and so a comparable failure case)."""
    live = path_set.live_paths(down) & path_set.candidate
    return np.flatnonzero(np.add.reduceat(live.astype(np.int64), path_set.od_ptr[:-1]) == 0)


def run(args: argparse.Namespace) -> int:
    from topologies.catalog import load_topology

    graph = load_topology(args.topology)
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = sorted(set(methods) - set(BASELINES) - {"agent"})
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(BASELINES)}, agent")
    series = load_series(args.traffic, graph, steps=args.steps, seed=args.seed)
    if args.paths_k is None or args.path_method is None:  # every method on the agent's paths
        k, method = DEFAULT_K, DEFAULT_METHOD
        if "agent" in methods:
            from agents.model_file import model_paths

            k, method = model_paths(args.model, args.topology)
        args.paths_k, args.path_method = args.paths_k or k, args.path_method or method
    path_set = PathSet.from_graph(graph, k=args.paths_k, method=args.path_method)
    policies = {name: make_policy(name, path_set) for name in methods if name != "agent"}
    if "agent" in methods:
        from agents.model_file import make_agent_policy  # torch only when the agent is asked

        policies["agent"] = make_agent_policy(path_set, graph, args.model, args.topology,
                                              adapt=args.adapt, transfer=args.transfer)
        policies = {name: policies[name] for name in methods}
    intervals = select_intervals(series, args.last)
    failures = failure_cases(path_set, args.failures) if args.failures else None

    started = time.perf_counter()
    result = evaluate(graph, series, path_set, policies, intervals, args.history,
                      path_optimum=args.path_optimum, progress=True)
    elapsed = time.perf_counter() - started
    document = result.to_json(
        topology=graph.graph.get("name", args.topology), traffic=series.source,
        paths_k=args.paths_k, path_method=args.path_method, history=args.history,
        seconds=round(elapsed, 2))
    print(format_table(document))
    print(f"{len(result.intervals)} intervals in {elapsed:.1f} s")
    if failures is not None:
        document["failures"] = run_failures(graph, series, path_set, policies, intervals,
                                            args.history, *failures)
    if args.json:
        args.json.write_text(json.dumps(document, indent=1))
        print(f"JSON written to {args.json}")
    if args.plot:
        plot_cdf(result, args.plot, title=plot_title(document, args, len(result.intervals)))
        print(f"plot written to {args.plot}")
    return 0


def run_failures(graph: nx.DiGraph, series: TrafficSeries, path_set: PathSet,
                 policies: Mapping[str, Policy], intervals: Sequence[int], history: int,
                 cases: list[tuple[Link, ...]], skipped: list[str]) -> dict[str, Any]:
    """Every single-link failure case: per case and method the ratio summary; overall, per
    method, the mean over cases and the worst case."""
    for reason in skipped:
        LOG.warning("failure case skipped: %s", reason)
    per_case: list[dict[str, Any]] = []
    for down in cases:
        result = evaluate(graph, series, path_set, policies, intervals, history,
                          down_links=down)
        per_case.append({"down": [list(map(str, e)) for e in down],
                         "methods": {m: result.summary(m)["ratio"] for m in policies}})
    overall = {m: {"mean": _stat(np.mean, np.array([c["methods"][m]["mean"] for c in per_case])),
                   "worst_mean": _stat(np.max, np.array([c["methods"][m]["mean"]
                                                         for c in per_case])),
                   "worst_p99": _stat(np.max, np.array([c["methods"][m]["p99"]
                                                        for c in per_case]))}
               for m in policies} if per_case else {}
    print(f"\nsingle link failures: {len(per_case)} cases ({len(skipped)} skipped: they "
          "disconnect an OD pair)")
    print(f"{'method':10} {'mean':>7} {'worst':>7} {'worst p99':>9}")
    for m, o in overall.items():
        print(f"{m:10} {_cell(o['mean'], 3)} {_cell(o['worst_mean'], 3)} "
              f"{_cell(o['worst_p99'], 3, 9)}")
    return {"cases": per_case, "skipped": skipped, "overall": overall}


def format_table(document: Mapping[str, Any]) -> str:
    header = (f"{'method':10} {'mean':>7} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}"
              f" {'ms mean':>8} {'ms p99':>8} {'MLU mean':>9} {'MLU max':>8}"
              "   (ratio = MLU / optimal MLU)")
    lines = [header, "-" * len(header)]
    for name, summary in document["methods"].items():
        ratio, ms = summary["ratio"], summary["decision_ms"]
        cells = [_cell(ratio[key], 3) for key in ("mean", "p50", "p90", "p99", "max")]
        cells += [_cell(ms[key], 2, 8) for key in ("mean", "p99")]
        cells += [_cell(summary["mlu"]["mean"], 4, 9), _cell(summary["mlu"]["max"], 4, 8)]
        lines.append(f"{name:10} " + " ".join(cells))
    optimum = document["optimal_mlu"]
    lines.append(f"{'optimal':10} " + " ".join([_cell(1.0, 3)] * 5 + [f"{'-':>8}"] * 2 + [
        _cell(optimum["mean"], 4, 9), _cell(optimum["max"], 4, 8)]))
    if "optimal_candidates_ratio_max" in document:
        lines.append(f"optimum over the candidate paths / all-paths optimum: max "
                     f"{_cell(document['optimal_candidates_ratio_max'], 6).strip()}")
    return "\n".join(lines)


def plot_title(document: Mapping[str, Any], args: argparse.Namespace, intervals: int) -> str:
    """What a plot shows: topology, traffic, model (when the agent is in it), intervals."""
    parts = [f"{document['topology']}", f"traffic {Path(str(document['traffic'])).name}"]
    if "agent" in document["methods"]:
        parts.append(f"model {args.model}" + (" (adapting)" if args.adapt else ""))
    return ", ".join(parts + [f"{intervals} intervals"])


def _cell(value: float | None, digits: int, width: int = 7) -> str:
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def plot_cdf(result: Evaluation, path: Path, title: str | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name in result.mlu:
        ratios = np.sort(result.ratios(name)[np.isfinite(result.ratios(name))])
        axes.step(ratios, np.arange(1, len(ratios) + 1) / len(ratios), where="post", label=name)
    axes.set_xlabel("MLU / optimal MLU")
    axes.set_ylabel("fraction of intervals")
    axes.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
    axes.grid(alpha=0.3)
    axes.legend()
    if title:
        axes.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
