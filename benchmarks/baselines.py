"""Baselines on the shared real series, scored against the all-paths LP optimum.

    .venv/bin/python -m benchmarks.baselines [--out benchmarks/results/baselines.json]

Abilene: the last 2 days (576 five-minute intervals, 2004-03-13..14). GEANT: the last 20 %
of the series. Each method decides for interval t from the matrices before t only.
"""
from __future__ import annotations

import argparse
import time

from agents.baselines import make_policy
from agents.evaluate import DEFAULT_METHODS, evaluate, select_intervals
from benchmarks.common import emit, shared_case
from sim.paths import PathSet

CASES = [
    ("abilene", "abilene-20040301-20040314.tm.npz", "576"),
    ("geant", "geant-20050504-20050507.tm.npz", "20%"),
]


def run_case(topology: str, traffic_name: str, last: str) -> dict:
    case = shared_case(topology, traffic_name)
    if case is None:
        return {"skipped": f"{traffic_name} not found in the shared data folder"}
    graph, series = case
    path_set = PathSet.from_graph(graph, k=4, method="hops")
    policies = {name: make_policy(name, path_set) for name in DEFAULT_METHODS}
    intervals = select_intervals(series, last)
    started = time.perf_counter()
    result = evaluate(graph, series, path_set, policies, intervals, path_optimum=True)
    seconds = time.perf_counter() - started
    document = result.to_json(traffic=traffic_name, last=last, seconds=round(seconds, 2))
    for summary in document["methods"].values():
        del summary["per_tm"]  # keep the benchmark record readable
    del document["optimal"], document["optimal_candidates"], document["intervals"]
    document["first_time"], document["last_time"] = document.pop("times")[::len(intervals) - 1]
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    emit({"benchmark": "baselines",
          "results": {topology: run_case(topology, name, last) for topology, name, last in CASES}},
         args.out)


if __name__ == "__main__":
    main()
