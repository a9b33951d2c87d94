"""``--record DIR``: the controller's measured OD matrices kept as ``.tm.npz`` series.

One file per ``per_file`` intervals (a day of 5-minute intervals by default), named by the
UTC time of its first interval (``ryute-20261204-201500.tm.npz``, so names sort in time);
at most ``max_files`` are kept, the oldest deleted: bounded on disk. The current file is
rewritten (to a temporary file, then renamed) every ``flush_every`` intervals and when full,
so a crash loses at most that many. An interval without a measured matrix (before two counter
samples) is recorded as all zero: the format's missing measurement. A topology change (other
nodes) starts a new file. ``ryute data join DIR --out FILE`` makes one series of them.

Writing never stops the controller: a failure is logged and the interval kept for the next
try.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

from topologies.traffic import TIME_FORMAT, TrafficSeries, save_traffic

LOG = logging.getLogger(__name__)

PREFIX = "ryute-"
SUFFIX = ".tm.npz"


class Recorder:
    """Appends one matrix per statistics interval (``add``), rotating bounded files."""

    def __init__(self, directory: str | Path, interval_s: float, per_file: int = 288,
                 max_files: int = 30, flush_every: int = 12) -> None:
        if per_file < 1 or max_files < 1 or flush_every < 1:
            raise ValueError("record: per_file, max_files and flush_every must be >= 1")
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"record: cannot create {self.directory}: {error}") from None
        self.interval_s = max(1, round(interval_s))
        self.per_file, self.max_files, self.flush_every = per_file, max_files, flush_every
        self._nodes: tuple[str, ...] = ()
        self._matrices: list[np.ndarray] = []
        self._times: list[str] = []
        self._path: Path | None = None

    def add(self, nodes: Sequence[Hashable], matrix: np.ndarray | None, wall: float) -> None:
        """The interval that closed at ``wall`` (seconds since the epoch): its OD matrix in
        ``nodes`` order (Mbit/s), or None when there was no measurement."""
        names = tuple(str(n) for n in nodes)
        if names != self._nodes and self._matrices:
            self.flush()
            self._start()
        self._nodes = names
        if not self._matrices:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(wall))
            self._path = self.directory / f"{PREFIX}{stamp}{SUFFIX}"
        n = len(names)
        self._matrices.append(np.zeros((n, n)) if matrix is None else np.nan_to_num(
            np.asarray(matrix, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0))
        self._times.append(time.strftime(TIME_FORMAT, time.gmtime(wall)))
        full = len(self._matrices) >= self.per_file
        if full or len(self._matrices) % self.flush_every == 0:
            if self.flush() and full:
                self._start()

    def flush(self) -> bool:
        """Write the current file now; False (logged) when it could not be written."""
        if not self._matrices or self._path is None:
            return True
        tm = np.stack(self._matrices)
        np.einsum("tii->ti", tm)[:] = 0.0  # traffic within a node never crosses the network
        series = TrafficSeries(tm=np.maximum(tm, 0.0), nodes=self._nodes,
                               times=tuple(self._times), interval_s=self.interval_s,
                               source=str(self._path))
        try:
            save_traffic(series, self._path)
        except OSError as error:
            LOG.warning("record: cannot write %s: %s", self._path, error)
            return False
        self._prune()
        return True

    def _start(self) -> None:
        self._matrices, self._times, self._path = [], [], None

    def _prune(self) -> None:
        files = sorted(self.directory.glob(f"{PREFIX}*{SUFFIX}"))
        for old in files[: max(0, len(files) - self.max_files)]:
            try:
                old.unlink()
            except OSError as error:
                LOG.warning("record: cannot delete %s: %s", old, error)
