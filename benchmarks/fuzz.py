"""The fuzz suites of ``make test``, run longer and at random: every REST endpoint of a live
controller (``tests/unit/test_fuzz_api.py``, Schemathesis) and the readers of topology,
traffic and model files (``tests/unit/test_fuzz_readers.py``, Hypothesis).

``--examples N`` per operation or property (``make test`` runs 30 and 50, derandomized);
the JSON says, per test, whether it held and how long it took, and the first lines of each
failure (Hypothesis prints the falsifying input; Schemathesis a curl line to reproduce it).

    python -m benchmarks.fuzz --examples 500 --json benchmarks/results/fuzz.json
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from benchmarks.common import emit

ROOT = Path(__file__).resolve().parents[1]
SUITES = ("tests/unit/test_fuzz_api.py", "tests/unit/test_fuzz_readers.py")


def run(examples: int, suites: tuple[str, ...]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "junit.xml"
        started = time.perf_counter()
        process = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             f"--junitxml={report}", *suites], cwd=ROOT, capture_output=True, text=True,
            env={**os.environ, "RYUTE_FUZZ_EXAMPLES": str(examples), "RYUTE_FUZZ_RANDOM": "1",
                 "PYTHONPATH": str(ROOT)})
        seconds = time.perf_counter() - started
        tests = [_case(case) for case in ET.parse(report).iter("testcase")] \
            if report.exists() else []
    return {"examples": examples, "seconds": round(seconds, 1), "exit_code": process.returncode,
            "held": sum(t["outcome"] == "held" for t in tests), "failed": sum(
                t["outcome"] != "held" for t in tests), "tests": tests,
            **({"output": process.stdout[-3000:]} if not tests else {})}


def _case(case: ET.Element) -> dict[str, Any]:
    failure = case.find("failure")
    if failure is None:
        failure = case.find("error")
    operation = next((prop.get("value") for prop in case.iter("property")
                      if prop.get("name") == "operation"), None)
    result: dict[str, Any] = {"test": case.get("name"), "seconds": float(case.get("time", 0)),
                              "outcome": "held" if failure is None else "failed"}
    if operation:
        result["operation"] = operation
    if failure is not None:
        result["failure"] = (failure.get("message") or "")[:500]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=300,
                        help="examples per operation or property (default 300)")
    parser.add_argument("--suite", choices=["api", "readers"], action="append",
                        help="only this suite (repeatable; default both)")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    chosen = tuple(s for s in SUITES if not args.suite or any(k in s for k in args.suite))
    result = run(args.examples, chosen)
    emit(result, args.json)
    return 0 if result["failed"] == 0 and result["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
