"""Benchmark of the RL agent on the shared test days (JSON on stdout or --json).

For each topology: train a model by the shipped recipe on the earlier days only (or load one with
--model), then score on the held-out test slice (Abilene: last 576 intervals = 2004-03-13..14;
GEANT: last 20 %), with ``agents.evaluate.evaluate`` (the code behind ``ryute evaluate``): the
agent, the agent with adaptation, invcap, ecmp and lp_last. Also: training time, decision time.

    python -m benchmarks.agent --topologies abilene,geant --json benchmarks/results/agent.json
    python -m benchmarks.agent --topologies abilene --split long-gap   # 03-01..07 -> 03-12..14
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from agents.adapt import AdaptConfig, AdaptivePolicy
from agents.agent import set_torch_threads
from agents.baselines import make_policy
from agents.evaluate import evaluate
from agents.model_file import load_agent
from agents.train import TrainConfig, train
from topologies.catalog import load_topology
from topologies.traffic import load_traffic, shared_data_dir

SERIES = {"abilene": "abilene-20040301-20040314.tm.npz", "geant": "geant-20050504-20050507.tm.npz"}
#: (validation, test) of the standard split; the long-gap split trains on 03-01..07 only.
SPLITS = {
    ("abilene", "standard"): ("576", "576"),
    ("geant", "standard"): ("15%", "20%"),
    # 7 days train, 03-08..11 unused (a gap of 4 days), validation none... see _long_gap
}


def run(topology: str, split: str, model: str | None, out_dir: Path, timesteps: int | None,
        adapt: bool, overrides: dict | None = None) -> dict:
    path = shared_data_dir() / "traffic" / SERIES[topology]
    if not path.exists():
        return {"skipped": f"{path} not found (shared data absent)"}
    graph = load_topology(topology)
    series = load_traffic(path).aligned_to(graph)
    n = len(series)
    if split == "long-gap":  # train 03-01..07 (2016), validate 03-08 (288), test 03-12..14 (864)
        validation, test, first_test = "288", str(n - 2016 - 288), n - 864
    else:
        validation, test = SPLITS[(topology, split)]
        first_test = None
    result: dict = {"topology": topology, "split": split, "series": series.source}
    if model is None:
        config = TrainConfig.for_topology(topology, validation=validation, test=test,
                                          **({"timesteps": timesteps} if timesteps is not None
                                             else {}), **(overrides or {}))
        model_path = out_dir / f"{topology}-{split}.zip"
        started = time.perf_counter()
        agent, meta = train(topology, str(path), model_path, config, log_dir=out_dir / "logs")
        result["training_seconds"] = round(time.perf_counter() - started, 1)
        result["validation"] = meta["validation"]
        result["train_dates"] = meta["training"]["train_dates"]
        model = str(model_path)
    ps = load_agent(model, _path_set(graph)).path_set
    agent = load_agent(model, ps, topology)
    held = agent.metadata["training"]["test_held_out"]
    start = first_test if first_test is not None else held[0]
    intervals = list(range(max(1, start), n))
    result["test_dates"] = [series.times[intervals[0]], series.times[intervals[-1]]]
    policies = {"agent": agent, **{m: make_policy(m, ps) for m in ("invcap", "ecmp", "lp_last")}}
    if adapt:
        policies["agent_adapt"] = AdaptivePolicy(load_agent(model, ps, topology), graph,
                                                 AdaptConfig())
    started = time.perf_counter()
    ev = evaluate(graph, series, ps, policies, intervals)
    result["evaluate_seconds"] = round(time.perf_counter() - started, 1)
    result["methods"] = {}
    for name in policies:
        s = ev.summary(name)
        result["methods"][name] = {"ratio": s["ratio"], "decision_ms": s["decision_ms"]}
    if adapt:
        st = policies["agent_adapt"].adapter.stats
        result["adaptation"] = {"rounds": st.rounds, "published": st.published,
                                "seconds_per_round": round(st.seconds / max(1, st.rounds), 4),
                                "drift_events": st.drift_events,
                                "drifted_matrices": st.drifted_matrices,
                                "early_rounds": st.early_rounds, "last_drift": st.last_drift}
    result["decision_ms_agent"] = _decision_ms(agent, graph, series, intervals)
    result["model"] = model
    result["model_bytes"] = Path(model).stat().st_size
    return result


def _path_set(graph):
    from sim.paths import PathSet

    return PathSet.from_graph(graph, k=4, method="hops")


def _decision_ms(agent, graph, series, intervals) -> dict:
    """Time of one ``decide`` on a full state, median and p99 over 200 decisions."""
    from sim.state import NetworkState

    state = NetworkState(graph.copy(), agent.path_set)
    for t in range(intervals[0] - agent.encoding.history, intervals[0]):
        state.push_matrix(series.tm[t])
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        agent.decide(state)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50": float(np.median(times)), "p99": float(np.percentile(times, 99))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--topologies", default="abilene,geant")
    p.add_argument("--split", default="standard", choices=["standard", "long-gap"])
    p.add_argument("--model", help="evaluate this model file instead of training one")
    p.add_argument("--timesteps", type=int, help="PPO steps (default: the shipped recipe's)")
    p.add_argument("--no-adapt", action="store_true")
    p.add_argument("--config", type=Path, help="JSON of TrainConfig fields over the recipe")
    p.add_argument("--out-dir", type=Path, default=Path("runs/bench-agent"))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    set_torch_threads()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    overrides = json.loads(args.config.read_text()) if args.config else None
    results = [run(t, args.split, args.model, args.out_dir, args.timesteps, not args.no_adapt,
                   overrides) for t in args.topologies.split(",")]
    text = json.dumps({"benchmark": "agent", "results": results}, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
