"""The generalist on networks it never saw: every held-out zoo topology, beside the baselines.

For every topology of the list (default: :data:`agents.generalist.HELD_OUT`) and every setting:

- ``as-is``: the zoo capacities, a gravity series of the project's generator (diurnal cycle,
  bursts, noise);
- ``uniform``: every link at the median capacity and a *drifting* series (the traffic mix
  moves from one gravity model to another over the series), like the public backbones of
  issue 12;

``--steps`` five-minute matrices (seeds far from every training seed), and every method of
``--methods`` decides each interval from the earlier matrices only (``ryute evaluate``'s
harness, :func:`agents.evaluate.evaluate`); scored from interval ``history`` on as MLU / the
all-paths LP optimum. The agent is ``--model`` rebuilt on the topology's own path set (the
generalist needs no ``--transfer``). Per topology and setting: mean / p90 / p99 of every
method, the agent's decision time, and whether it beats ``lp_last`` and ``lp_pred`` on all of
mean, p90 and p99. ``--plot`` draws the CDF over topologies of the mean ratio per method.

    python -m benchmarks.generalize --json benchmarks/results/generalize.json \\
        --plot benchmarks/results/generalize.png
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.agent import set_torch_threads
from agents.baselines import make_policy
from agents.evaluate import evaluate
from agents.generalist import HELD_OUT, VALIDATION, capacity_variant, drifting_traffic, zoo_topology
from agents.model_file import GENERALIST, load_agent
from benchmarks.common import emit
from sim.paths import PathSet
from topologies.traffic import synthetic_traffic

log = logging.getLogger(__name__)

SETTINGS = ("as-is", "uniform")
BASELINES = ("invcap", "ecmp", "lp_last", "lp_pred")
#: Series seeds of this benchmark: far from the generalist's training (10,000+) and the
#: synthetic defaults (0..).
SEED = 900_000


def case(name: str, setting: str, steps: int, seed: int):
    graph = zoo_topology(name)
    if setting == "as-is":
        return graph, synthetic_traffic(graph, steps=steps, seed=seed)
    graph = capacity_variant(graph, "uniform", np.random.default_rng(seed))
    return graph, drifting_traffic(graph, steps, seed)


def summary(ratios: np.ndarray) -> dict[str, float]:
    r = ratios[np.isfinite(ratios)]
    return {"mean": float(r.mean()), "p90": float(np.percentile(r, 90)),
            "p99": float(np.percentile(r, 99))}


def run_case(name: str, setting: str, model: str, methods: list[str], steps: int, seed: int,
             history: int, known: dict[str, Any] | None = None, paths: str = "hops:4"
             ) -> dict[str, Any]:
    """One topology and setting; methods already in ``known`` (the same case of an earlier run,
    ``--reuse``) are taken from it, not recomputed."""
    graph, series = case(name, setting, steps, seed)
    started = time.perf_counter()
    method, _, k = paths.partition(":")
    path_set = PathSet.from_graph(graph, k=int(k or 4), method=method)
    path_seconds = time.perf_counter() - started
    known = known or {"methods": {}, "decision_ms": {}}
    todo = [m for m in methods if m not in known["methods"]]
    policies = {m: make_policy(m, path_set) for m in todo if m != "agent"}
    if "agent" in todo:
        policies["agent"] = load_agent(model, path_set, name)
    result = evaluate(graph, series, path_set, policies, range(history, len(series)), history)
    out: dict[str, Any] = {
        "topology": name, "setting": setting, "nodes": graph.number_of_nodes(),
        "links": graph.number_of_edges(), "ods": path_set.n_ods, "paths": path_set.n_paths,
        "path_set_s": round(path_seconds, 3), "intervals": len(result.intervals),
        "methods": {m: known["methods"].get(m) or summary(result.ratios(m)) for m in methods},
        "decision_ms": {m: known["decision_ms"].get(m) or
                        float(np.nanmedian(result.decision_ms[m])) for m in methods},
    }
    if "agent" in methods:
        agent = out["methods"]["agent"]
        out["agent_beats"] = {m: all(agent[q] < out["methods"][m][q] for q in agent)
                              for m in ("lp_last", "lp_pred") if m in methods}
    return out


def aggregate(cases: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    """Per method: the mean over cases of each statistic, and the worst case."""
    out: dict[str, Any] = {}
    for m in methods:
        rows = [c["methods"][m] for c in cases if m in c["methods"]]
        out[m] = {q: float(np.mean([r[q] for r in rows])) for q in ("mean", "p90", "p99")}
        out[m]["worst_mean"] = float(max(r["mean"] for r in rows))
        out[m]["cases_mean_le_1.03"] = int(sum(r["mean"] <= 1.03 for r in rows))
        out[m]["cases_p99_le_1.10"] = int(sum(r["p99"] <= 1.10 for r in rows))
    if "agent" in methods:
        for m in ("lp_last", "lp_pred"):
            if m in methods:
                out["agent"][f"cases_beating_{m}"] = int(sum(c["agent_beats"][m] for c in cases))
    out["cases"] = len(cases)
    return out


def plot(cases: list[dict[str, Any]], methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for m in methods:
        means = np.sort([c["methods"][m]["mean"] for c in cases])
        ax.step(means, np.arange(1, len(means) + 1) / len(means), where="post", label=m)
    ax.set_xlabel("mean MLU / optimal MLU per topology and setting")
    ax.set_ylabel("fraction of cases")
    ax.set_xlim(left=1.0)
    ax.legend()
    if "agent" in methods:
        bx.scatter([c["nodes"] for c in cases], [c["decision_ms"]["agent"] for c in cases], s=10)
        bx.set_xlabel("nodes")
        bx.set_ylabel("agent decision (ms, median)")
        bx.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(GENERALIST))
    parser.add_argument("--topologies", default="held-out",
                        help="'held-out', 'validation' or comma-separated zoo names")
    parser.add_argument("--max-nodes", type=int, default=1000)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--methods", default=",".join(("agent",) + BASELINES))
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--history", type=int, default=12)
    parser.add_argument("--paths", default="hops:4",
                        help="candidate paths of every method, METHOD:K (default hops:4)")
    parser.add_argument("--reuse", type=Path, help="an earlier run's JSON: its results for the "
                                                   "same cases and methods are kept")
    parser.add_argument("--shard", default="0/1", help="K/N: only every N-th topology from "
                        "the K-th (same seeds as the whole run; run N at once, then --reuse a "
                        "JSON holding all their cases for the summary)")
    parser.add_argument("--json")
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args(argv)
    shard, shards = (int(x) for x in args.shard.split("/"))
    logging.basicConfig(level=logging.WARNING)
    set_torch_threads()
    names = {"held-out": list(HELD_OUT), "validation": list(VALIDATION)}.get(
        args.topologies, [n.strip() for n in args.topologies.split(",") if n.strip()])
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    known = {}
    if args.reuse:
        previous = json.loads(args.reuse.read_text())
        if (previous["steps"], previous["history"], previous.get("paths", "hops:4")) != (
                args.steps, args.history, args.paths):
            parser.error(f"--reuse {args.reuse}: another --steps, --history or --paths")
        known = {(c["topology"], c["setting"]): c for c in previous["cases"]}
    cases = []
    for i, name in enumerate(names):
        if i % shards != shard or zoo_topology(name).number_of_nodes() > args.max_nodes:
            continue
        for setting in args.settings.split(","):
            c = run_case(name, setting, args.model, methods, args.steps, SEED + 10 * i,
                         args.history, known.get((name, setting)), args.paths)
            log.warning("%s/%s (%d nodes): %s", name, setting, c["nodes"],
                        {m: round(s["mean"], 3) for m, s in c["methods"].items()})
            cases.append(c)
            if args.json:  # so far: a stopped run keeps what it measured (--reuse it)
                Path(args.json).write_text(json.dumps({"steps": args.steps, "history": args.history,
                                                       "paths": args.paths, "cases": cases}))
    result = {"model": args.model, "steps": args.steps, "history": args.history,
              "paths": args.paths,
              "aggregate": aggregate(cases, methods), "cases": cases}
    emit(result, args.json)
    if args.plot:
        plot(cases, methods, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
