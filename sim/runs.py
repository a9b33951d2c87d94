"""Where runs write their logs, checkpoints and reports: the one run-directory rule.

Every command that writes something a user may want to read afterwards (``ryute train``'s
metrics, ``ryute emulate``'s schedules and decision log, the demo, the adapter's models, the
testbeds' records) writes under :func:`runs_root`: ``$RYUTE_RUNS`` when set, else ``runs/`` in
the working directory (the checkout's ignored folder when run from there, as the README does;
an installed ryute has no project folder to write into). Never the system's temporary folder,
which ``mn -c`` empties.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

RUNS_ENV = "RYUTE_RUNS"


def runs_root() -> Path:
    """``$RYUTE_RUNS``, or ``runs`` in the working directory."""
    return Path(os.environ.get(RUNS_ENV) or "runs")


def run_dir(kind: str, name: str | None = None) -> Path:
    """``runs_root()/kind/name``; by default ``name`` is the time and the process id
    (``20261204-201500-4242``), so concurrent runs never share a folder. Not created."""
    return runs_root() / kind / (name or time.strftime("%Y%m%d-%H%M%S-") + str(os.getpid()))
