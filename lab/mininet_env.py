"""The Mininet-backed TE environment: the fluid environment's spaces, real switches and packets.

:class:`MininetTEEnv` is a :class:`sim.env.TEEnv` (same observation and action spaces, same
episodes over the same series, same optimum, same ``step``) whose routing hook (``_route``)
does not compute the MLU but measures it:

1. the action's path weights go to the controller, ``PUT /te/v1/decision`` with the API token;
   the controller runs in ``external`` mode, where such a decision is installed at once if it
   passes its safety checks (well-formed, no weight on a down link, fresh statistics), else the
   fallback is (``info["source"]`` and ``info["reasons"]`` say which);
2. matrix t is replayed by the hosts (paced UDP, :mod:`lab.replay`) for ``interval_s`` after a
   warm-up of one poll interval;
3. the reward is ``-(measured MLU) / (optimal MLU of matrix t)``, the measured MLU being the
   busiest link of the utilization (port counters) averaged over the controller's statistics
   readings inside the interval (:func:`lab.emulation.interval_mlu`, as ``ryute emulate``).
   ``info`` adds the fluid model's prediction for the same decision (``predicted_mlu``), the
   measured mean link loads (``link_loads``, topology units, ``path_set.edges`` order), the
   loss, the number of readings and of replays (``attempts``).
4. a replay that lost more than ``max_loss`` of its packets was disturbed (on a busy machine
   the userspace datapath or a sender misses its turn on the CPU for seconds): the matrix is
   replayed again, at most ``remeasure`` times, and the last replay counts.

The utilization part of the next observation is the measured one; the matrices observed are
the series' (the offered load, which the replay matches to within 0.1 %). The environment
talks to the controller through its REST API only; it needs the testbed (Mininet hosts) to
start the senders. The series is multiplied by ``traffic_scale`` (default: the factor putting
the fallback's MLU of the episode range in [0.5, 0.9], :func:`lab.replay.choose_traffic_scale`)
before anything else, so observations, optimum and replay all see the replayed demand.

Slow by nature (one step takes ``interval_s`` plus about 5 s of start-up and drain): used to
validate and fine-tune a simulation-trained agent (``ryute train --env mininet``), not to train
one from scratch. Needs root and Open vSwitch, like :class:`lab.testbed.Testbed`.
"""
from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np

from api.client import ApiError, ControllerClient
from controller.auth import new_api_token
from lab.config import CAPACITY_SCALE, poll_interval_for
from lab.emulation import (
    inside_readings,
    interval_mlu,
    replay,
    wait_until_ready,
)
from lab.replay import DEFAULT_FLOWS, ReplayPlan, collect_reports
from sim import runs
from sim.env import TEEnv
from sim.loads import mlu
from sim.optimal import optimal_series
from topologies.catalog import load_topology
from topologies.traffic import TrafficSeries, load_series

log = logging.getLogger(__name__)

MAX_LOSS = 0.01
"""A replay losing more packets than this is measured again (a link below saturation drops
nothing: the loss is the machine's, not the routing's)."""
REMEASURE = 2
"""At most this many extra replays of a disturbed interval."""
OPTIMUM_TARGET = 0.55
"""Default traffic scale: the busiest matrix's optimal MLU lands here (``ryute train --env
mininet`` instead scales like ``ryute emulate``: the fallback's MLU in [0.5, 0.9])."""


class MininetTEEnv(TEEnv):
    """:class:`~sim.env.TEEnv` measured on Open vSwitch in Mininet (see the module docstring).

    Args:
        topology: a catalog spec or topology file (the testbed and the controller load it).
        traffic: as for :class:`TEEnv`.
        testbed: a running :class:`~lab.testbed.Testbed` whose controller is in external mode
            with ``token``; by default the environment starts its own (and ``close`` stops it).
        token: the controller's API token (default: the testbed's; generated for an own
            testbed, which hands it to its controller in the environment).
        interval_s: seconds each matrix is replayed.
        traffic_scale: factor on the series (default: see the module docstring).
        capacity_scale: emulated capacities are the topology's divided by this.
        flows, mtu: flows per OD pair and the hosts' MTU (see ``ryute emulate`` and
            :data:`lab.replay.DEFAULT_FLOWS`).
        run_dir: where the controller's log and each step's schedules and reports (removed after
            the step) go; default ``runs/mininet-env/TIME-PID`` (:mod:`sim.runs`).
        max_loss, remeasure: a replay losing more than ``max_loss`` of its packets is replayed
            again, at most ``remeasure`` times (module docstring, item 4).
        **fluid: the other :class:`TEEnv` arguments (``history``, ``paths_k``,
            ``episode_length``, ``interval_range``, ``scale_reference``, ...); ``failure_prob``
            must stay 0 (no link failures in emulated episodes).
    """

    def __init__(
        self,
        topology: str = "abilene",
        traffic: TrafficSeries | str | os.PathLike = "synthetic",
        *,
        testbed: Any = None,
        token: str | None = None,
        interval_s: float = 4.0,
        traffic_scale: float | None = None,
        capacity_scale: float = CAPACITY_SCALE,
        flows: int = DEFAULT_FLOWS,
        mtu: int = 1500,
        run_dir: str | os.PathLike | None = None,
        switch_prefix: str = "m",
        host_prefix: str = "n",
        max_loss: float = MAX_LOSS,
        remeasure: int = REMEASURE,
        **fluid: Any,
    ) -> None:
        if fluid.get("failure_prob", 0.0):
            raise ValueError("the Mininet environment has no link-failure episodes "
                             "(failure_prob must be 0)")
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if not 0 <= max_loss < 1 or remeasure < 0:
            raise ValueError(f"need 0 <= max_loss < 1 and remeasure >= 0, got {max_loss}, "
                             f"{remeasure}")
        graph = load_topology(topology)
        series = load_series(traffic, graph)
        if traffic_scale is None:
            traffic_scale = _default_scale(graph, series, fluid)
        super().__init__(graph, series.scaled(traffic_scale), **fluid)
        self.topology_spec = str(topology)
        self.traffic_scale = float(traffic_scale)
        self.interval_s = float(interval_s)
        self.capacity_scale = float(capacity_scale)
        self.flows, self.mtu = int(flows), int(mtu)
        self.max_loss, self.remeasure = float(max_loss), int(remeasure)
        self.switch_prefix: str
        self.host_prefix: str
        self.switch_prefix, self.host_prefix = (testbed.switch_prefix, testbed.host_prefix) \
            if testbed is not None else (switch_prefix, host_prefix)
        self.run_dir = Path(run_dir) if run_dir else runs.run_dir("mininet-env")
        self._steps_done = 0
        self.token = token or getattr(testbed, "api_token", None) or new_api_token()
        self._own_testbed = testbed is None
        self.testbed = testbed if testbed is not None else self._start_testbed()
        self.api = ControllerClient(self.testbed.rest_url, self.token)
        try:
            self._connect()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ gymnasium API
    def _route(self, t: int, weights: np.ndarray) -> tuple[float, np.ndarray, dict[str, Any]]:
        """The routing hook of :meth:`TEEnv.step`: install ``weights`` through the controller,
        replay matrix t, measure its MLU (the rest of ``step`` is the fluid environment's)."""
        answer = self._put_decision(weights)
        (measured_mlu, loads, readings, loss), attempt = self._measure(t)
        predicted = float(mlu(self.path_set, weights, self.series.tm[t]))
        log.info("interval %d: measured MLU %.3f (fluid model %.3f, optimum %.3f), %d readings, "
                 "loss %s", t, measured_mlu, predicted, float(self._optima[self._down][t]),
                 readings, "n/a" if loss is None else f"{loss:.2%}")
        if answer["source"] != "external":
            log.warning("interval %d: the controller installed the %s, not this decision: %s",
                        t, answer["source"], "; ".join(answer["reasons"]) or "no reason given")
        return measured_mlu, loads, {"predicted_mlu": predicted, "source": answer["source"],
                                     "reasons": answer["reasons"], "loss": loss,
                                     "readings": readings, "link_loads": loads,
                                     "attempts": attempt}

    def close(self) -> None:
        """Stop the testbed this environment started (a given one is left running)."""
        if self._own_testbed and getattr(self, "testbed", None) is not None:
            self.testbed.__exit__(None, None, None)
            self.testbed = None
        super().close()

    def __enter__(self) -> MininetTEEnv:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.close()
        return False  # exceptions propagate

    # ------------------------------------------------------------------ internals
    @property
    def poll_s(self) -> float:
        return float(self.testbed.poll_interval_s)

    def replay_plan(self, t: int) -> ReplayPlan:
        """What the hosts send to replay matrix t (one poll interval of warm-up first)."""
        return ReplayPlan.for_graph(
            self.graph, self.series.tm[t : t + 1], interval_s=self.interval_s, traffic_scale=1.0,
            capacity_scale=self.capacity_scale, switch_prefix=self.switch_prefix,
            host_prefix=self.host_prefix, warmup_s=self.poll_s, flows=self.flows,
            payload=self.mtu - 28)

    def _start_testbed(self) -> Any:
        from lab.testbed import Testbed

        testbed = Testbed(self.topology_spec, scale=self.capacity_scale,
                          poll_interval_s=poll_interval_for(self.interval_s),
                          controller_args=("--mode", "external",
                                           "--paths-k", str(self.path_set.k),
                                           "--path-method", self.path_set.method),
                          api_token=self.token,
                          log_dir=self.run_dir, switch_prefix=self.switch_prefix,
                          host_prefix=self.host_prefix)
        return testbed.__enter__()

    def _connect(self) -> None:
        """Wait for the network, check the controller's paths are ours, mode external."""
        wait_until_ready(self.testbed, self.replay_plan(int(self.decision_times[0])), self.mtu)
        theirs = {path["id"]: tuple(path["nodes"]) for pair in
                  self._api(self.api.paths)["od_pairs"] for path in pair["paths"]}
        ours = {i: tuple(str(n) for n in p) for i, p in enumerate(self.path_set.paths)}
        if theirs != ours:
            raise RuntimeError(
                f"the controller's candidate paths differ from this environment's ({len(theirs)} "
                f"vs {len(ours)} paths): give both the same topology and --paths-k")
        mode = self._api(self.api.status)["mode"]
        if mode != "external":
            self._api(self.api.set_mode, "external")

    @staticmethod
    def _api(call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)`` on the controller's client; a refused request is a RuntimeError."""
        try:
            return call(*args)
        except ApiError as error:
            if error.status is None:
                raise
            raise RuntimeError(f"controller refused: {error}") from None

    def _put_decision(self, weights: np.ndarray) -> dict[str, Any]:
        return self._api(self.api.put_decision, [float(w) for w in weights])

    def _measure(self, t: int) -> tuple[tuple[float, np.ndarray, int, float | None], int]:
        """Replay matrix t until a replay loses at most ``max_loss`` (``remeasure`` extra
        replays at most); returns the last replay's measurements and the number of replays."""
        for attempt in range(1, self.remeasure + 2):
            measured = self._replay(t)
            loss = measured[3]
            if loss is None or loss <= self.max_loss or attempt > self.remeasure:
                return measured, attempt
            log.warning("interval %d: the replay lost %.2f%% of its packets (more than %.2f%%): "
                        "the machine disturbed it, measuring again", t, 100 * loss,
                        100 * self.max_loss)
        raise AssertionError("unreachable")

    def _replay(self, t: int) -> tuple[float, np.ndarray, int, float | None]:
        """Replay matrix t; returns the measured MLU, mean link loads (topology units, edge
        order), the number of readings and the packet loss."""
        self._steps_done += 1
        folder = self.run_dir / f"step-{self._steps_done:06d}"
        plan = self.replay_plan(t)
        run = replay(self.testbed, plan, folder, self.poll_s, self.path_set.n_paths)
        shutil.rmtree(folder, ignore_errors=True)
        readings = [r for r in inside_readings(run.readings, run.measured_at,
                                               run.measured_at + self.interval_s)
                    if r.utilization]
        measured = interval_mlu(readings, self.path_set.edges)
        if measured is None:
            raise RuntimeError(
                f"no statistics reading of the controller inside the {self.interval_s:g} s "
                f"interval (poll {self.poll_s:g} s, {len(run.readings)} readings in all): "
                "lengthen interval_s or check the controller log")
        measured_mlu, mean_util = measured  # the MLU of the mean utilization (interval_mlu)
        loads = mean_util * self.path_set.capacities
        counts = collect_reports(plan, run.reports)
        sent = float(counts.sent_packets[1:].sum())
        loss = float((sent - counts.received_packets[1:].sum()) / sent) if sent else None
        return measured_mlu, loads, len(readings), loss


def _default_scale(graph: nx.DiGraph, series: TrafficSeries, fluid: dict[str, Any]) -> float:
    """The traffic scale putting the optimal MLU of the busiest matrix of the episode range at
    ``OPTIMUM_TARGET`` (routing methods then load the network without saturating it)."""
    start, stop, _ = slice(*fluid.get("interval_range", (None, None))).indices(len(series))
    optima = optimal_series(graph, series.tm[start:stop], cache_dir=fluid.get("cache_dir"))
    if not (optima > 0).any():
        raise ValueError(f"{series.source}: no demand between OD pairs in [{start}, {stop})")
    return OPTIMUM_TARGET / float(optima.max())
