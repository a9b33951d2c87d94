"""Time of a full single-link-failure capacity study (``ryute plan --failures n-1``) on the
shared real series, and how many LPs the bounded daily optimum needed.

    .venv/bin/python -m benchmarks.plan [--out benchmarks/results/plan.json]

GEANT: the whole series (3.4 days of 15-minute matrices: the shared data has no week);
Abilene: its last week (2016 five-minute matrices). Growth 3 %/month, threshold 0.8, k = 4
min-hop candidate paths, one process. ``lps_all`` is what solving every interval of every
case would take.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

from agents.plan import Case, Days, Growth, study
from benchmarks.common import emit, shared_case
from sim.paths import PathSet

CASES = [
    ("geant", "geant-20050504-20050507.tm.npz", None),
    ("abilene", "abilene-20040301-20040314.tm.npz", 7),
]


def run_case(topology: str, traffic_name: str, last_days: int | None) -> dict[str, Any]:
    shared = shared_case(topology, traffic_name)
    if shared is None:
        return {"skipped": f"{traffic_name} not found in the shared data folder"}
    graph, series = shared
    assert series.interval_s
    if last_days:
        series = series.slice(len(series) - last_days * 86400 // series.interval_s)
    began = time.perf_counter()
    cpu = time.process_time()
    path_set = PathSet.from_graph(graph, k=4)
    case = Case(graph, path_set, series, Days.of(series, series.interval_s))
    result = study(case, Growth(0.03, "given"), 0.8, "n-1")
    failures = result["failures"]
    valid = int(series.valid_mask.sum())
    return {"traffic": traffic_name, "matrices": len(series),
            "first": series.times[0], "last": series.times[-1],
            "failure_cases": failures["cases"], "skipped_cases": len(failures["skipped"]),
            "seconds": round(time.perf_counter() - began, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),
            "lps_solved": result["optimum"]["lps_solved"] + failures["lps_solved"],
            "lps_all": valid * (1 + failures["cases"]),
            "first_saturation": result["fallback"]["first"],
            "optimum_peak_mlu": result["optimum"]["peak_mlu"],
            "optimum_worst_failure": failures["optimum_worst"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    emit({"benchmark": "plan", "results": {topology: run_case(topology, name, days)
                                           for topology, name, days in CASES}}, args.out)


if __name__ == "__main__":
    main()
