"""How well hashed flows realize a split: measured vs. fluid link loads on a ring in Mininet.

The Mininet-backed environment (:class:`lab.mininet_env.MininetTEEnv`, ring of five, 128 flows
per OD pair) installs two decisions on the same matrix: every OD pair on its shortest candidate
(no split to realize: the baseline of the same run) and an equal split over its two candidates,
each ``--repeats`` times, for every capacity scale and interval. Reported per case: the
replay's split samples (:attr:`lab.replay.ReplayPlan.split_samples`), the measured and predicted
MLU and the largest per-link error relative to the busiest predicted link.

    python -m benchmarks.split_realization --scales 1000,100 --intervals 2,4 \\
        --json benchmarks/results/split_realization.json

Needs root and Open vSwitch (as the integration tests); about 25 s per replayed interval.
"""
from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np

from agents.baselines import shortest_path_decision
from benchmarks.common import emit
from lab.mininet_env import MininetTEEnv
from sim.loads import link_loads

TOPOLOGY = "ring:n=5"
TRAFFIC = "synthetic:steps=96,seed=3,load=0.5"
INTERVAL = 21  # the matrix where the two decisions' predicted MLUs differ most (the test's)


def measure(env: MininetTEEnv, name: str, action: np.ndarray) -> dict[str, Any]:
    env.reset(options={"start": INTERVAL})
    _, _, _, _, info = env.step(action)
    capacities = env.path_set.capacities
    predicted = link_loads(env.path_set, env.encoding.weights(action),
                           env.series.tm[INTERVAL]) / capacities
    measured = info["link_loads"] / capacities
    return {"decision": name, "measured_mlu": round(info["mlu"], 4),
            "predicted_mlu": round(info["predicted_mlu"], 4),
            "mlu_error": round(abs(info["mlu"] - info["predicted_mlu"]) / info["predicted_mlu"], 4),
            "max_link_error": round(float(np.abs(measured - predicted).max() / predicted.max()), 4),
            "readings": info["readings"]}


def run(scale: float, interval_s: float, repeats: int) -> dict[str, Any]:
    with MininetTEEnv(TOPOLOGY, TRAFFIC, interval_s=interval_s, capacity_scale=scale,
                      episode_length=1, history=4, switch_prefix="d", host_prefix="f") as env:
        encoding = env.encoding
        shortest = encoding.action(shortest_path_decision(env.path_set, "hops"))
        equal = np.zeros(encoding.n_actions)
        rows = [measure(env, name, action) for _ in range(repeats)
                for name, action in (("shortest", shortest), ("equal", equal))]
        samples, poll_s = env.replay_plan(INTERVAL).split_samples, env.poll_s
    return {"capacity_scale": scale, "interval_s": interval_s, "poll_s": poll_s,
            "split_samples": round(samples, 1), "runs": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scales", default="1000,100", help="capacity scales (comma-separated)")
    p.add_argument("--intervals", default="2,4", help="seconds per interval (comma-separated)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    started = time.monotonic()
    cases = [run(float(scale), float(interval), args.repeats)
             for scale in args.scales.split(",") for interval in args.intervals.split(",")]
    emit({"benchmark": "split_realization", "topology": TOPOLOGY, "traffic": TRAFFIC,
          "interval": INTERVAL, "cases": cases, "seconds": round(time.monotonic() - started)},
         args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
