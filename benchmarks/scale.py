"""How the costs grow with the network: path set, agent decision, memory, controller start.

For every size of ``--sizes`` (``N`` or ``N/E``: N nodes of the seeded ``wan`` topology with
traffic at E edge nodes; E = 0 means all pairs), in a fresh process each (so that its peak
memory is its own): the candidate path set's build time, its size, the agent's decision time
(``--model``, default the shipped generalist; ``zoo:NAME`` for a zoo topology, all pairs;
one ``decide`` on a full history, one torch
thread; median of ``--repeats``) and the process's peak resident memory. With
``--controller N/E``: the seconds from starting ``ryute controller`` on that topology (with
``--model default``) to its REST API answering ``/te/v1/paths`` with every OD pair.

    python -m benchmarks.scale --sizes 50/10,100/20,200/40,500/100,1000/200,200/0 \\
        --controller 200/0 --json benchmarks/results/scale.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from api.client import ApiError, ControllerClient
from benchmarks.common import emit

ROOT = Path(__file__).resolve().parents[1]


def spec(size: str) -> str:
    """``N/E`` -> the seeded wan topology; ``zoo:NAME`` -> that shared zoo file."""
    if size.startswith("zoo:"):
        from topologies.traffic import shared_data_dir

        return str(shared_data_dir() / "topologies" / "zoo" / f"{size[4:]}.json")
    n, _, edge = size.partition("/")
    return f"wan:n={int(n)},edge={int(edge or 0)},seed=1"


def measure_one(size: str, model: str, repeats: int) -> dict[str, Any]:
    """One size, in this process (see the module docstring)."""
    from agents.agent import set_torch_threads
    from agents.model_file import load_agent
    from sim.paths import PathSet
    from sim.state import NetworkState
    from topologies.catalog import load_topology
    from topologies.traffic import synthetic_traffic

    set_torch_threads()
    graph = load_topology(spec(size))
    started = time.perf_counter()
    path_set = PathSet.from_graph(graph, k=4)
    build_s = time.perf_counter() - started
    agent = load_agent(model, path_set, spec(size))
    state = NetworkState(graph, path_set)
    for m in synthetic_traffic(graph, steps=agent.encoding.history, seed=1).tm:
        state.push_matrix(m)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        decision = agent.decide(state)
        times.append((time.perf_counter() - started) * 1000)
    assert decision.validate() == []
    return {"size": size, "topology": spec(size), "nodes": graph.number_of_nodes(),
            "links": graph.number_of_edges(), "ods": path_set.n_ods, "paths": path_set.n_paths,
            "candidates": int(path_set.candidate.sum()),
            "path_length_total": int(path_set.incidence.nnz),
            "path_set_s": round(build_s, 2), "decision_ms_median": float(np.median(times)),
            "decision_ms_max": float(np.max(times)),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def controller_start(size: str, timeout_s: float = 600.0) -> dict[str, Any]:
    """Seconds from launching the controller to its API listing every OD pair's paths."""
    rest, ofp = free_port(), free_port()
    command = [sys.executable, "-m", "lab.cli", "controller", "--topology", spec(size),
               "--model", "default", "--ofp-host", "127.0.0.1", "--ofp-port", str(ofp),
               "--rest-port", str(rest)]
    client = ControllerClient(f"http://127.0.0.1:{rest}", timeout_s=30)
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            while time.perf_counter() - started < timeout_s:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"controller exited: {log.read().decode()[-2000:]}")
                try:
                    paths = client.paths()
                    if paths.get("od_pairs"):
                        seconds = time.perf_counter() - started
                        status = client.status()
                        return {"size": size, "start_s": round(seconds, 2),
                                "ods": len(paths["od_pairs"]), "model": status.get("model"),
                                "model_resolved": status.get("model_resolved")}
                except ApiError:
                    pass
                time.sleep(0.5)
            raise RuntimeError(f"no paths after {timeout_s} s")
        finally:
            process.terminate()
            process.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50/10,100/20,200/40,500/100,1000/200")
    parser.add_argument("--model", default="default")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--controller", help="N/E: also time a controller start")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # one size, in this process
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.one, args.model, args.repeats)))
        return 0
    rows = []
    for size in args.sizes.split(","):
        out = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--one", size,
                              "--model", args.model, "--repeats", str(args.repeats)],
                             cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if out.returncode:
            rows.append({"size": size, "error": out.stderr.strip().splitlines()[-1:]})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    result: dict[str, Any] = {"sizes": rows}
    if args.controller:
        result["controller"] = controller_start(args.controller)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
