"""Candidate path sets per method: build time, size, the optimum they allow, data-plane cost.

For each topology (default: every zoo topology of the shared data, smallest first) and method:
build time of ``PathSet.from_graph``, paths, candidates per OD pair, the path-restricted optimum
over the all-paths optimum on the topology's Repetita matrices and on one synthetic matrix (seed 7,
not one of the ``te`` method's representative seeds), and what the set costs the switches.

    .venv/bin/python -m benchmarks.paths [--topologies Abilene,Cogentco | --limit 60]
        [--methods hops:4,te:8] [--out benchmarks/results/paths.json]

Data-plane cost, with one MPLS label per path (DESIGN.md): every switch after a path's first
holds one rule for it (transit: label -> out port; egress: pop), so ``rules_max`` is the largest
number of paths through one switch (its first hop excluded); ``suffix_rules_max`` is the same count
if paths that continue identically from a switch shared a label there (label swapping);
``buckets_max`` / ``buckets_mean`` are the paths of an OD pair (the ingress SELECT group's buckets);
``labels`` the paths of the set (the MPLS label space is 2^20).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit, machine
from sim.optimal import optimal_series
from sim.paths import PathSet
from topologies.catalog import load_topology
from topologies.loaders import TopologyError
from topologies.traffic import TrafficError, load_traffic, shared_data_dir, synthetic_traffic

EVAL_SEED = 7


def zoo_names() -> list[str]:
    folder = shared_data_dir() / "topologies" / "zoo"
    return sorted(p.stem for p in folder.glob("*.json"))


def sized(names: list[str]) -> list[tuple[int, str]]:
    out = []
    for name in names:
        try:
            data = json.loads((shared_data_dir() / "topologies" / "zoo" / f"{name}.json").read_text())
            out.append((len(data["nodes"]), name))
        except (OSError, ValueError, KeyError):
            out.append((0, name))
    return sorted(out)


def spread(names: list[str], limit: int) -> list[str]:
    """``limit`` names evenly spread over the size order, always with the largest one."""
    order = [name for _, name in sized(names)]
    if limit >= len(order):
        return order
    picks = np.unique(np.round(np.linspace(0, len(order) - 1, limit)).astype(int))
    return [order[i] for i in picks]


def dataplane(ps: PathSet) -> dict:
    through = np.zeros(ps.n_nodes, np.int64)
    suffixes: list[set] = [set() for _ in range(ps.n_nodes)]
    for path in ps.paths:
        for i in range(1, len(path)):
            v = ps.node_index(path[i])
            through[v] += 1
            suffixes[v].add(path[i:])
    buckets = np.diff(ps.od_ptr)
    return {"rules_max": int(through.max()), "rules_mean": round(float(through.mean()), 1),
            "suffix_rules_max": max(len(s) for s in suffixes),
            "buckets_max": int(buckets.max()), "buckets_mean": round(float(buckets.mean()), 2),
            "labels": ps.n_paths}


def ratios(ps: PathSet, tms: np.ndarray, opt: np.ndarray) -> list[float]:
    return [round(float(x), 5) for x in optimal_series(ps, tms) / opt]


def run_topology(name: str, methods: list[tuple[str, int]]) -> dict:
    base = shared_data_dir()
    graph = load_topology(base / "topologies" / "zoo" / f"{name}.json")
    repetita = load_traffic(base / "traffic" / "zoo" / f"{name}.tm.npz").aligned_to(graph).tm
    synthetic = synthetic_traffic(graph, 1, seed=EVAL_SEED).tm
    started = time.perf_counter()
    opt_rep = optimal_series(graph, repetita)
    opt_syn = optimal_series(graph, synthetic)
    row: dict = {"nodes": graph.number_of_nodes(), "links": graph.number_of_edges(),
                 "all_paths_optima_s": round(time.perf_counter() - started, 2), "methods": {}}
    for method, k in methods:
        started = time.perf_counter()
        ps = PathSet.from_graph(graph, k=k, method=method)
        build = time.perf_counter() - started
        cand = np.add.reduceat(ps.candidate.astype(np.int64), ps.od_ptr[:-1])
        rep = ratios(ps, repetita, opt_rep)
        row["methods"][f"{method}:{k}"] = {
            "build_s": round(build, 3), "paths": ps.n_paths,
            "candidates": int(ps.candidate.sum()),
            "candidates_per_od": {"mean": round(float(cand.mean()), 2), "max": int(cand.max())},
            "candidate_hops_total": int(ps.incidence[ps.candidate].sum()),
            "ratio_repetita": rep, "ratio_repetita_max": max(rep),
            "ratio_synthetic": ratios(ps, synthetic, opt_syn)[0],
            **dataplane(ps),
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topologies", help="comma-separated zoo names (default: all)")
    parser.add_argument("--limit", type=int, help="this many zoo topologies spread over sizes")
    parser.add_argument("--methods", default="hops:4,te:8", help="method:k,... (default %(default)s)")
    parser.add_argument("--out", help="also write the JSON here (rewritten after each topology)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        methods = [(m, int(k)) for m, k in (item.split(":") for item in args.methods.split(","))]
    except ValueError:
        sys.exit(f"error: --methods must look like hops:4,te:8, got {args.methods!r}")
    names = zoo_names()
    if args.topologies:
        wanted = args.topologies.split(",")
        unknown = [n for n in wanted if n not in names]
        if unknown:
            sys.exit(f"error: not zoo topologies: {', '.join(unknown)}")
        names = wanted
    elif args.limit:
        names = spread(names, args.limit)
    results: dict = {}
    for name in names:
        started = time.perf_counter()
        try:
            results[name] = run_topology(name, methods)
        except (TopologyError, TrafficError, OSError, ValueError, RuntimeError) as e:
            results[name] = {"skipped": str(e).splitlines()[0]}
        print(f"{name}: {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps({"benchmark": "paths", "machine": machine(),
                                                  "partial": True, "results": results}) + "\n")
    emit({"benchmark": "paths", "methods": args.methods, "results": results,
          "summary": summary(results, methods)}, args.out)


def summary(results: dict, methods: list[tuple[str, int]]) -> dict:
    out = {}
    done = [r for r in results.values() if "methods" in r]
    for method, k in methods:
        key = f"{method}:{k}"
        worst = np.array([max(r["methods"][key]["ratio_repetita_max"],
                              r["methods"][key]["ratio_synthetic"]) for r in done])
        if not len(worst):
            continue
        out[key] = {"topologies": len(worst),
                    "share_within_1.005": round(float(np.mean(worst <= 1.005)), 3),
                    "share_within_1.02": round(float(np.mean(worst <= 1.02)), 3),
                    "worst": round(float(worst.max()), 4),
                    "build_s_max": max(r["methods"][key]["build_s"] for r in done)}
    return out


if __name__ == "__main__":
    main()
