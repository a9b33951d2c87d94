"""Time of one LP solve of the oracle (all-paths multi-commodity flow, source-aggregated, HiGHS)
and of the path-restricted LP (the one ``lp_last`` solves every interval), per matrix.

    .venv/bin/python -m benchmarks.lp [--out benchmarks/results/lp.json]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import emit, shared_case
from sim.optimal import optimal_mlu, path_optimal
from sim.paths import PathSet
from topologies.traffic import shared_data_dir

CASES = [  # name, topology spec, traffic file, number of matrices timed
    ("abilene", "abilene", "abilene-20040301-20040314.tm.npz", 20),
    ("geant", "geant", "geant-20050504-20050507.tm.npz", 20),
    ("cogentco", str(shared_data_dir() / "topologies" / "zoo" / "Cogentco.json"),
     "zoo/Cogentco.tm.npz", 5),
]


def timed(function, matrices) -> list[float]:
    seconds = []
    for matrix in matrices:
        started = time.perf_counter()
        function(matrix)
        seconds.append(time.perf_counter() - started)
    return seconds


def run_case(topology: str, traffic_name: str, count: int) -> dict:
    case = shared_case(topology, traffic_name)
    if case is None:
        return {"skipped": f"{traffic_name} not found in the shared data folder"}
    graph, series = case
    matrices = series.tm[series.valid_mask][-count:]
    started = time.perf_counter()
    path_set = PathSet.from_graph(graph, k=4, method="hops")
    path_set_seconds = time.perf_counter() - started
    all_paths = timed(lambda m: optimal_mlu(graph, m), matrices)
    restricted = timed(lambda m: path_optimal(path_set, m), matrices)
    return {
        "nodes": graph.number_of_nodes(), "links": graph.number_of_edges(),
        "paths": path_set.n_paths, "od_pairs": path_set.n_ods, "matrices": len(matrices),
        "path_set_build_s": round(path_set_seconds, 3),
        "all_paths_lp_s": {"mean": float(np.mean(all_paths)), "max": float(np.max(all_paths))},
        "path_lp_s": {"mean": float(np.mean(restricted)), "max": float(np.max(restricted))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    emit({"benchmark": "lp", "results": {name: run_case(topology, traffic, count)
                                         for name, topology, traffic, count in CASES}}, args.out)


if __name__ == "__main__":
    main()
