"""REST latency under heavy reads: ``status`` while other clients read the decision log.

Starts ``ryute controller`` (``--topology``, no switches, a token), makes ``--decisions``
decision records (mode changes: each decides at once), then times ``--samples`` status
requests: alone, and while ``--clients`` threads read pages of ``--limit`` records of the
decision log in a loop (the largest page the server allows is ``DECISIONS_PAGE_MAX``; issue
15 measured 5.7 ms alone and 269 ms beside 4 clients reading ``?limit=10000``, before pages).

    python -m benchmarks.rest_load --clients 4 --json benchmarks/results/rest_load.json
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from api import endpoints
from api.client import ApiError, ControllerClient
from benchmarks.common import emit
from lab.testbed import free_port

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "rest-load-benchmark-token"


def start(topology: str, folder: Path) -> tuple[subprocess.Popen, ControllerClient]:
    rest = free_port()
    command = [sys.executable, "-m", "lab.cli", "controller", "--topology", topology,
               "--ofp-host", "127.0.0.1", "--ofp-port", str(free_port()),
               "--rest-port", str(rest), "--poll-interval", "3600"]
    with open(folder / "controller.log", "wb") as log:
        process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "RYUTE_API_TOKEN": TOKEN,
                                        "PYTHONPATH": str(ROOT)})
    client = ControllerClient(f"http://127.0.0.1:{rest}", TOKEN, timeout_s=30)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"controller exited: {(folder / 'controller.log').read_text()}")
        try:
            client.status()
            return process, client
        except ApiError:
            time.sleep(0.2)
    raise RuntimeError("controller did not answer in 120 s")


def latencies_ms(client: ControllerClient, samples: int) -> dict[str, float]:
    values = []
    for _ in range(samples):
        started = time.perf_counter()
        client.status()
        values.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)
    values.sort()
    return {"median": round(statistics.median(values), 2),
            "p95": round(values[int(0.95 * (len(values) - 1))], 2),
            "max": round(values[-1], 2)}


def under_load(client: ControllerClient, clients: int, limit: int,
               samples: int) -> dict[str, Any]:
    stop, pages = threading.Event(), [0] * clients

    def read(index: int) -> None:
        reader = ControllerClient(client.url, timeout_s=60)
        while not stop.is_set():
            reader.decision_page(limit)
            pages[index] += 1

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    try:
        status = latencies_ms(client, samples)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    seconds = time.perf_counter() - started
    return {"status_ms": status, "pages_per_s": round(sum(pages) / seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topology", default="abilene")
    parser.add_argument("--decisions", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--limit", type=int, default=endpoints.DECISIONS_PAGE_MAX,
                        help="records per page the readers ask for")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        process, client = start(args.topology, Path(folder))
        try:
            for i in range(args.decisions):
                client.set_mode("active" if i % 2 == 0 else "shadow")
            page = client.decision_page(args.limit)
            result = {"topology": args.topology, "decisions": args.decisions,
                      "clients": args.clients, "limit": args.limit,
                      "page_records": len(page["decisions"]),
                      "alone": {"status_ms": latencies_ms(client, args.samples)},
                      "beside_readers": under_load(client, args.clients, args.limit,
                                                   args.samples)}
        finally:
            process.terminate()
            process.wait(30)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
