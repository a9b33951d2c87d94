"""How fast ``ryute status`` answers: the whole command (a new interpreter, the imports, one
request) against a live controller, timed ``--samples`` times, and what its imports cost
(``python -X importtime``, the ``lab.cli`` total).

Starts ``ryute controller`` (``--topology``, no switches). ``--tree DIR`` times the command of
another checkout (e.g. main) against the same controller.

    python -m benchmarks.cli_status --samples 20 --json benchmarks/results/cli_status.json
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import emit
from benchmarks.rest_load import ROOT, start


def command_seconds(tree: Path, url: str, samples: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    values = []
    for _ in range(samples):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lab.cli", "status", "--url", url], env=env,
                       cwd=tree, check=True, capture_output=True, timeout=120)
        values.append(time.perf_counter() - started)
    values.sort()
    return {"median": round(statistics.median(values), 3), "max": round(values[-1], 3)}


def import_ms(tree: Path) -> float:
    """``lab.cli``'s cumulative import time, as ``-X importtime`` reports it."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import lab.cli"],
                          env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree, check=True,
                          capture_output=True, text=True, timeout=120)
    (line,) = [line for line in done.stderr.splitlines() if re.search(r"\| lab\.cli$", line)]
    return round(int(line.split("|")[1]) / 1000, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topology", default="abilene")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--tree", type=Path, action="append", default=[],
                        help="also time this checkout's ryute status (repeatable)")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"topology": args.topology, "samples": args.samples, "trees": {}}
    with tempfile.TemporaryDirectory() as folder:
        process, client = start(args.topology, Path(folder))
        try:
            for tree in [ROOT, *args.tree]:
                result["trees"][str(tree.resolve())] = {
                    "status_s": command_seconds(tree.resolve(), client.url, args.samples),
                    "import_lab_cli_ms": import_ms(tree.resolve())}
        finally:
            process.terminate()
            process.wait(30)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
