"""A topology-aware model (``network = "path"``) on topologies it was not trained on.

For every topology: the candidate paths (k = 4, hops), the model rebuilt on them
(``load_agent(..., transfer=True)``), and for every matrix m of the topology's traffic the
agent's decision given m itself as the history (the zoo files hold 5 independent matrices, not
a series: this measures the routing, not the prediction), scored as MLU / optimal MLU beside
invcap and ECMP on the same candidate paths; with one link down too (the first link whose loss
leaves every OD pair a candidate), against the optimum with that link down. Decision time: one
``decide`` on a full state, median and p99 of 20.

    python -m benchmarks.transfer --model runs/bench-agent-path/abilene-standard.zip \\
        --topologies geant,nsfnet,zoo:Cogentco --json benchmarks/results/transfer.json

Topologies: catalog names, files, or ``zoo:NAME`` (shared Topology Zoo file with its 5 Repetita
matrices); a catalog topology without shared matrices gets 5 synthetic ones (seed 0, the
matrices 120..124).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.agent import set_torch_threads
from agents.baselines import shortest_path_decision
from agents.model_file import load_agent
from benchmarks.common import emit, traffic_file
from sim.loads import mlu
from sim.optimal import optimal_mlu
from sim.paths import PathSet
from sim.state import NetworkState
from topologies.catalog import load_topology
from topologies.traffic import load_traffic, shared_data_dir, synthetic_traffic

log = logging.getLogger(__name__)


def case(spec: str):
    """(graph, matrices [M, N, N], traffic description) of one topology spec."""
    if spec.startswith("zoo:"):
        name = spec.split(":", 1)[1]
        graph = load_topology(str(shared_data_dir() / "topologies" / "zoo" / f"{name}.json"))
        path = traffic_file(f"zoo/{name}.tm.npz")
        if path is None:
            raise SystemExit(f"{spec}: shared zoo traffic absent")
        return graph, load_traffic(path).aligned_to(graph).tm, str(path.name)
    graph = load_topology(spec)
    series = synthetic_traffic(graph, steps=125, seed=0)
    return graph, series.tm[120:125], "synthetic(seed=0)[120:125]"


def failable_link(agent) -> tuple[Any, Any] | None:
    """The first link whose loss (both directions) leaves every OD pair a live candidate."""
    for u, v in agent.path_set.edges:
        try:
            agent.encoding.live_candidates({(u, v), (v, u)})
            return u, v
        except ValueError:
            continue
    return None


def run(model: str, spec: str) -> dict[str, Any]:
    graph, matrices, traffic = case(spec)
    started = time.perf_counter()
    path_set = PathSet.from_graph(graph, k=4, method="hops")
    build_s = time.perf_counter() - started
    agent = load_agent(model, path_set, spec, transfer=True)
    result: dict[str, Any] = {
        "topology": spec, "nodes": graph.number_of_nodes(), "links": graph.number_of_edges(),
        "od_pairs": path_set.n_ods, "candidate_paths": int(path_set.candidate.sum()),
        "path_set_seconds": round(build_s, 1), "traffic": traffic,
        "transferred_from": agent.metadata.get("transferred_from")}
    link = failable_link(agent)
    for label, down in (("all links up", ()), (f"link {link} down", (link,) if link else None)):
        if down is None:
            continue
        ratios: dict[str, list[float]] = {"agent": [], "invcap": [], "ecmp": []}
        times = []
        for m in matrices:
            state = NetworkState(graph.copy(), path_set, agent.encoding.history)
            state.push_matrix(m)
            for u, v in down:
                state.set_link_up(u, v, False)
                state.set_link_up(v, u, False)
            optimum = optimal_mlu(graph, m, down_links=state.down_links)
            t0 = time.perf_counter()
            decision = agent.decide(state)
            times.append((time.perf_counter() - t0) * 1000)
            ratios["agent"].append(float(mlu(path_set, decision.weights, m)) / optimum)
            for name, method, ties in (("invcap", "invcap", True), ("ecmp", "hops", True)):
                base = shortest_path_decision(path_set, method, down_links=state.down_links,
                                              ecmp_ties=ties, strict=False)
                ratios[name].append(float(mlu(path_set, base.weights, m)) / optimum)
        result[label] = {name: {"mean": float(np.mean(r)), "max": float(np.max(r))}
                         for name, r in ratios.items()}
        result[label]["agent_decision_ms"] = {"p50": float(np.median(times)),
                                              "max": float(np.max(times))}
    log.info("%s: %s", spec, result)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model file of network 'path'")
    p.add_argument("--topologies", default="geant,nsfnet")
    p.add_argument("--json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    set_torch_threads()
    results = [run(args.model, spec.strip()) for spec in args.topologies.split(",") if spec]
    emit({"benchmark": "transfer", "model": str(Path(args.model)), "results": results}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
