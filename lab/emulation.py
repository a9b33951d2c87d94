"""Driving a running testbed through the controller's API: what ``ryute emulate`` and the
Mininet-backed environment (:mod:`lab.mininet_env`) share.

- :class:`Monitor`: every closed statistics interval of the controller (a :class:`Reading`:
  per-link utilization and load, measured OD matrix), and the weights installed after it.
- :func:`wait_until_ready` and :func:`prepare_hosts`: links discovered, hosts known, flows'
  source addresses and static neighbours on every host (see :mod:`lab.replay`).
- :func:`replay`: run one :class:`~lab.replay.ReplayPlan` on the hosts while the monitor reads
  the controller; returns the readings and the senders' and receivers' reports.
- :func:`interval_mlu`: the measured MLU of one replay interval from its readings (the one
  estimator of both ``ryute emulate`` and the Mininet environment).

Readings: the controller closes a statistics interval at every poll; a reading covers the
time since the previous one (``start``, None when a reading was missed).
"""
from __future__ import annotations

import json
import logging
import random
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from api.client import ApiError, ControllerClient
from lab.replay import MIN_SPLIT_SAMPLES, ReplayPlan

LOG = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parents[1]
STARTUP_S = 2.0
"""Time given to the replay agents to start before the first segment."""
LINGER_S = 2.0
"""Monitoring goes on this long after the last segment (the receivers' last packets)."""


@dataclass
class Reading:
    """One closed statistics interval of the controller: (start, at] and what it measured."""

    at: float
    start: float | None
    utilization: dict[tuple[str, str], float]
    load_mbps: dict[tuple[str, str], float]  # as the switches carry it
    od_mbps: list[list[float]] | None
    weights_after: np.ndarray | None = None
    """The path weights read just after this reading appeared in the API: the decision made
    at that poll round."""

    @property
    def mlu(self) -> float | None:
        return max(self.utilization.values()) if self.utilization else None


@dataclass
class Monitor:
    """Collects every statistics reading of the controller, and the weights installed after it."""

    api: ControllerClient
    poll_s: float
    n_paths: int
    readings: list[Reading] = field(default_factory=list)
    _paths_due: float | None = None
    errors: int = 0

    def step(self) -> None:
        try:
            self._step()
        except ApiError as error:  # a slow answer from a loaded controller: try next turn
            self.errors += 1
            LOG.debug("monitor: %s", error)

    def _step(self) -> None:
        now = time.time()
        if self._paths_due is not None and now >= self._paths_due and self.readings:
            self.readings[-1].weights_after = self._weights()
            self._paths_due = None
        status = self.api.status()
        at = status["last_statistics"]
        if at is None or (self.readings and at <= self.readings[-1].at):
            return
        for _ in range(3):  # topology and traffic of the same reading
            topology, traffic = self.api.topology(), self.api.traffic()
            status = self.api.status()
            if status["last_statistics"] == at:
                break
            at = status["last_statistics"]
        else:
            return
        # the reading's window starts at the controller's previous reading, which this monitor
        # may have missed on a loaded machine
        previous = status["previous_statistics"]
        links = topology.get("graph_links", [])
        self.readings.append(Reading(
            at=at, start=previous,
            utilization={(link["src"], link["dst"]): link["utilization"] for link in links},
            load_mbps={(link["src"], link["dst"]): link["load_mbps"] for link in links},
            od_mbps=traffic.get("od_mbps") or None))
        # The decision of this poll is installed right after the reading: read it a moment later.
        self._paths_due = time.time() + min(0.5, self.poll_s / 3)

    def _weights(self) -> np.ndarray:
        weights = np.full(self.n_paths, np.nan)
        for pair in self.api.paths()["od_pairs"]:
            for path in pair["paths"]:
                if path["weight"] is not None:
                    weights[path["id"]] = path["weight"]
        return weights


def inside_readings(readings: list[Reading], begin: float, end: float) -> list[Reading]:
    """The readings whose window lies inside [begin, end] (queues of the previous matrix drained)."""
    return [r for r in readings if r.start is not None and r.start >= begin + 0.05
            and r.at <= end]


def interval_mlu(readings: Sequence[Reading],
                 edges: Sequence[tuple[Any, Any]]) -> tuple[float, np.ndarray] | None:
    """The measured MLU of one replay interval and the mean utilization [L] of every link of
    ``edges`` (0 for a link no reading measured), from the interval's readings; None when none
    of them measured a link.

    The MLU is that of the mean utilization, ``max_l mean_r u_l(r)``, not the mean of each
    reading's busiest link: the fluid model predicts each link's mean load over the interval,
    and a reading covers one poll interval (0.5 to 2 s) of paced UDP whose rates fluctuate, so
    ``mean_r max_l u_l(r) >= max_l mean_r u_l(r)`` with a gap that grows with the noise and with
    the number of links near the top (biased up, and more for a decision that balances load).
    """
    measured = [r for r in readings if r.utilization]
    if not measured:
        return None
    util = np.array([[r.utilization.get((str(u), str(v)), np.nan) for u, v in edges]
                     for r in measured])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a link no reading measured: NaN -> 0
        mean_util = np.nan_to_num(np.nanmean(util, axis=0))
    return float(mean_util.max()), mean_util


def wait_until_ready(testbed, plan: ReplayPlan, mtu: int = 1500,
                     timeout_s: float = 90.0) -> float:
    """Every link discovered, every host of the plan known to the controller, the hosts
    prepared for the replay; returns the loss (%) of the first ``pingAll``, which teaches the
    controller the hosts."""
    expected = testbed.graph.number_of_edges()
    testbed.wait_for(lambda: len(testbed.api.topology()["links"]) >= expected,
                     timeout_s=timeout_s)
    loss = testbed.net.pingAll(timeout=2)
    hosts = sum(h is not None for h in plan.hosts)
    testbed.wait_for(lambda: testbed.api.status()["hosts"] >= hosts, timeout_s=30)
    prepare_hosts(testbed, plan, mtu)
    samples = plan.split_samples
    if samples < MIN_SPLIT_SAMPLES:
        LOG.warning("an OD pair's split is realized by %.0f hashed datagrams per %g s interval "
                    "(demand-weighted mean): measured loads will stray from the fluid model's by "
                    "about %.0f %% of a demand; lower the capacity scale (now %g) or lengthen "
                    "the interval", samples, plan.interval_s, 50 / np.sqrt(samples),
                    plan.capacity_scale)
    return loss


def prepare_hosts(testbed, plan: ReplayPlan, mtu: int = 1500) -> None:
    """Source addresses of the flows and static neighbours on every host (see lab.replay);
    jumbo frames on host links and switch ports when ``mtu`` > 1500."""
    if mtu > 1500:
        for switch in testbed.net.switches:
            for intf in switch.intfList():
                if intf.name != "lo":
                    switch.cmd(f"ip link set {intf} mtu {mtu + 100}")
        for host in testbed.net.hosts:
            host.cmd(f"ip link set {host.defaultIntf()} mtu {mtu}")
    for src, host in enumerate(plan.hosts):
        if host is None:
            continue
        node = testbed.net.get(host.name)
        for script in _command_lines(plan.host_setup_commands(src, node.defaultIntf().name)):
            out = node.cmd(script + " && echo replay-ready")
            if "replay-ready" not in out:
                raise RuntimeError(f"preparing {host.name} for the replay failed: {out[-500:]}")


MAX_COMMAND_LINE = 2000
"""Mininet types commands into the host's shell through a terminal, whose line buffer holds
4095 characters: a longer line never completes (and ``cmd`` waits forever)."""


def _command_lines(commands: list[str]) -> list[str]:
    """``commands`` joined by ``&&`` into lines of at most :data:`MAX_COMMAND_LINE` characters."""
    lines: list[str] = []
    for command in commands:
        if lines and len(lines[-1]) + len(command) + 4 <= MAX_COMMAND_LINE:
            lines[-1] += " && " + command
        else:
            lines.append(command)
    return lines


@dataclass
class ReplayRun:
    """One replay of a plan: when it ran, what the controller measured, what the hosts counted."""

    started_at: float  # first segment (warm-up)
    measured_at: float  # first replayed matrix
    ended_at: float
    readings: list[Reading]
    reports: list[dict]
    monitor_errors: int


def replay(testbed, plan: ReplayPlan, folder: Path, poll_s: float, n_paths: int) -> ReplayRun:
    """Replay ``plan`` on the testbed's hosts (one ``python -m lab.replay`` per host, schedules
    and reports in ``folder``) while a :class:`Monitor` reads the controller."""
    start_at = time.time() + STARTUP_S
    schedules = plan.write_schedules(folder, start_at=start_at, token=random.getrandbits(32))
    processes = {host: testbed.popen(host, [sys.executable, "-m", "lab.replay", str(path)],
                                     cwd=str(PROJECT_DIR))
                 for host, path in schedules.items()}
    end_at = start_at + sum(plan.segments_s)
    monitor = Monitor(testbed.api, poll_s, n_paths)
    while time.time() < end_at + LINGER_S:
        monitor.step()
        for host, process in processes.items():
            if process.poll() not in (None, 0):
                raise RuntimeError(f"replay agent on {host} failed: {process.output()[-2000:]}")
        time.sleep(0.2)
    reports = []
    for host, process in processes.items():
        try:
            process.wait(timeout=15)
        except Exception:  # noqa: BLE001 (stopped by the testbed at exit)
            LOG.warning("replay agent on %s did not finish", host)
            continue
        report = folder / f"{host}.report.json"
        if process.returncode != 0 or not report.exists():
            raise RuntimeError(f"replay agent on {host} exited with {process.returncode}: "
                               f"{process.output()[-2000:]}")
        reports.append(json.loads(report.read_text()))
        testbed.forget(process)
    return ReplayRun(start_at, start_at + plan.warmup_s, end_at + LINGER_S, monitor.readings,
                     reports, monitor.errors)
