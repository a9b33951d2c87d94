"""Where a trained agent's distance to the optimum comes from, on its held-out test slice.

Three ratios to the all-paths optimal MLU, per test interval (mean, p90, p99):

- ``agent``: the agent as it runs, deciding interval t from the matrices before t;
- ``agent_given_t``: the same network given matrix t itself as the newest of its history (an
  oracle input): what remains is the network's routing, not its prediction of the next matrix;
- ``candidate_optimum``: the optimum over the candidate paths only: what remains is the path set.

    python -m benchmarks.agent_gap --topology geant \\
        --model runs/bench-agent-path/geant-standard.zip --json benchmarks/results/agent_gap.json

The model must hold its training split (``training.test_held_out``, as ``benchmarks.agent``
writes it); the shared series must be present.
"""
from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

from agents.agent import AgentPolicy, set_torch_threads
from agents.model_file import load_agent
from benchmarks.agent import SERIES, _path_set
from benchmarks.common import emit, traffic_file
from sim.loads import mlu
from sim.optimal import optimal_series
from sim.state import NetworkState
from topologies.catalog import load_topology
from topologies.traffic import load_traffic


def summary(ratios: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(np.mean(ratios)), 4),
            "p90": round(float(np.percentile(ratios, 90)), 4),
            "p99": round(float(np.percentile(ratios, 99)), 4)}


def decide_after(agent: AgentPolicy, graph, matrices: np.ndarray) -> np.ndarray:
    """The agent's weights given ``matrices`` as its history (oldest first)."""
    state = NetworkState(graph.copy(), agent.path_set, agent.encoding.history)
    for matrix in matrices:
        state.push_matrix(matrix)
    return agent.decide(state).weights


def run(topology: str, model: str) -> dict[str, Any]:
    path = traffic_file(SERIES[topology])
    if path is None:
        raise SystemExit(f"{SERIES[topology]}: shared traffic absent")
    graph = load_topology(topology)
    series = load_traffic(path).aligned_to(graph)
    path_set = _path_set(graph)
    agent = load_agent(model, path_set, topology)
    first, stop = agent.metadata["training"]["test_held_out"]
    history = agent.encoding.history
    intervals = range(max(first, history), stop)
    optimum = optimal_series(graph, series.tm[intervals.start:intervals.stop])
    ratios: dict[str, list[float]] = {"agent": [], "agent_given_t": []}
    for i, t in enumerate(intervals):
        for name, newest in (("agent", t - 1), ("agent_given_t", t)):
            weights = decide_after(agent, graph, series.tm[newest - history + 1: newest + 1])
            ratios[name].append(float(mlu(path_set, weights, series.tm[t])) / optimum[i])
    candidates = optimal_series(path_set, series.tm[intervals.start:intervals.stop]) / optimum
    return {"topology": topology, "model": model, "intervals": [first, stop],
            "test_dates": [series.times[intervals.start], series.times[intervals.stop - 1]],
            **{name: summary(np.array(r)) for name, r in ratios.items()},
            "candidate_optimum": summary(candidates)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--topology", required=True, choices=sorted(SERIES))
    p.add_argument("--model", required=True, help="a model trained on the earlier days")
    p.add_argument("--json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    set_torch_threads()
    emit({"benchmark": "agent_gap", **run(args.topology, args.model)}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
