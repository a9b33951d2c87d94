"""The decision loop: fallback and agent decide every interval; health says whose decision counts.

Plain objects, no os-ken: the app calls :meth:`DecisionLoop.decide` once per statistics interval
and installs the returned decision. Mode is what the operator asked for (``shadow`` or
``active``); health is what the loop observes. The agent's decision is installed only in active
mode while the agent is trusted; an unhealthy decision hands over to the fallback in the same
interval, and trust returns only after ``recover_after`` consecutive healthy decisions.
"""
from __future__ import annotations

import enum
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.decision import Decision
from sim.loads import mlu
from sim.policy import Policy
from sim.state import NetworkState

LOG = logging.getLogger("ryute.decisions")


class Mode(str, enum.Enum):
    SHADOW = "shadow"
    ACTIVE = "active"
    EXTERNAL = "external"
    """Decisions come from outside (the Mininet-backed training environment) through the
    authenticated API; each one passes the safety checks or the fallback is installed."""


class ExternalDecisions:
    """The latest decision handed in from outside, as a policy."""

    name = "external"

    def __init__(self) -> None:
        self.weights: np.ndarray | None = None

    def decide(self, state: NetworkState) -> Decision:
        if self.weights is None:
            raise ValueError("no external decision yet")
        return Decision(state.path_set, self.weights)


@dataclass(frozen=True)
class HealthConfig:
    """When the agent is not trusted. Every threshold is documented where it is checked."""

    budget_ms: float = 50.0
    """An agent decision slower than this is not waited for."""
    stale_intervals: float = 3.0
    """Statistics older than this many poll intervals make any decision blind."""
    mlu_margin: float = 0.10
    """Unhealthy when the agent's predicted MLU exceeds the fallback's by more than this share."""
    drift_factor: float = 10.0
    """Unhealthy when the total demand is outside [1/f, f] x the model's training reference."""
    recover_after: int = 3
    """Consecutive healthy decisions before the agent is trusted (again)."""

    def __post_init__(self) -> None:
        problems = [f"{name} must be > 0, got {getattr(self, name)}"
                    for name in ("budget_ms", "stale_intervals", "drift_factor")
                    if not getattr(self, name) > 0]
        if self.mlu_margin < 0 or self.recover_after < 1:
            problems.append("mlu_margin must be >= 0 and recover_after >= 1")
        if problems:
            raise ValueError("invalid health configuration: " + "; ".join(problems))


@dataclass
class Outcome:
    """What running the agent gave: a decision, or why not, and how long it took."""

    decision: Decision | None
    error: str | None
    elapsed_ms: float


Runner = Callable[[Callable[[], Decision], float], Outcome]


def thread_runner() -> Runner:
    """Run the agent in a worker thread and stop waiting after the budget (it may go on)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ryute-agent")

    def run(call: Callable[[], Decision], budget_s: float) -> Outcome:
        started = time.perf_counter()
        future = pool.submit(call)
        try:
            decision = future.result(timeout=budget_s)
            return Outcome(decision, None, (time.perf_counter() - started) * 1000)
        except FutureTimeout:
            return Outcome(None, "timeout", (time.perf_counter() - started) * 1000)
        except Exception as error:  # the agent's failure is a health finding, not ours
            return Outcome(None, f"{type(error).__name__}: {error}",
                           (time.perf_counter() - started) * 1000)
    return run


@dataclass
class Health:
    """Trust with hysteresis. Starts untrusted: an agent earns trust by healthy decisions."""

    recover_after: int = 3
    trusted: bool = False
    streak: int = 0
    reasons: list[str] = field(default_factory=lambda: ["no decision yet"])
    transitions: int = 0

    def update(self, reasons: list[str]) -> str | None:
        """Record one decision's findings; returns "trusted"/"untrusted" on a transition."""
        self.reasons = list(reasons)
        if reasons:
            self.streak = 0
            if self.trusted:
                self.trusted = False
                self.transitions += 1
                return "untrusted"
            return None
        self.streak += 1
        if not self.trusted and self.streak >= self.recover_after:
            self.trusted = True
            self.transitions += 1
            return "trusted"
        return None


@dataclass
class DecisionRecord:
    seq: int
    time: float
    mode: str
    source: str
    model: str | None
    trusted: bool
    reasons: list[str]
    predicted_mlu: dict[str, float | None]
    decision_ms: dict[str, float | None]
    differ: bool | None
    transition: str | None = None
    measured_mlu: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class DecisionLog:
    """The last ``size`` records in memory; each also appended to a JSON-lines file, if any,
    once its measured MLU is known (the interval after it was installed)."""

    def __init__(self, size: int = 1000, path: str | Path | None = None) -> None:
        self.records: deque[DecisionRecord] = deque(maxlen=size)
        self.path = Path(path) if path else None
        self._unwritten: DecisionRecord | None = None

    def append(self, record: DecisionRecord) -> None:
        self.records.append(record)
        self.flush()
        self._unwritten = record

    def measured(self, mlu_value: float) -> None:
        """The measured MLU of the interval the latest decision was installed for."""
        if self._unwritten is not None:
            self._unwritten.measured_mlu = _finite(mlu_value)
            self.flush()

    def flush(self) -> None:
        record, self._unwritten = self._unwritten, None
        if record is None or self.path is None:
            return
        try:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record.to_json()) + "\n")
        except OSError as error:  # a full disk must not stop routing
            LOG.error("cannot append to decision log %s: %s", self.path, error)

    def latest(self, limit: int) -> list[dict[str, Any]]:
        return [record.to_json() for record in list(self.records)[-limit:]][::-1]


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def training_demand(agent: Policy) -> float | None:
    """The mean total demand of the agent's training data (its input scale), if it says; None
    for a scale-free model (the generalist), whose input is the traffic mix only."""
    if getattr(agent, "metadata", {}).get("scale_free"):
        return None
    encoding = getattr(agent, "encoding", None)
    return getattr(encoding, "scale_reference", None)


class DecisionLoop:
    """Fallback and agent side by side; the effective decision and a record of both."""

    def __init__(self, fallback: Policy, *, poll_interval_s: float, mode: Mode = Mode.SHADOW,
                 health: HealthConfig = HealthConfig(), log: DecisionLog | None = None,
                 runner: Runner | None = None) -> None:
        self.fallback = fallback
        self.poll_interval_s = poll_interval_s
        self.mode = Mode(mode)
        self.config = health
        self.log = log or DecisionLog()
        self.runner = runner or thread_runner()
        self.agent: Policy | None = None
        self.model_id: str | None = None
        self.health = Health(health.recover_after)
        self.external = ExternalDecisions()
        self.source = "fallback"
        self._busy = threading.Event()
        self._seq = 0

    def set_agent(self, agent: Policy | None, model_id: str | None) -> None:
        """A new model starts untrusted and earns trust like any other."""
        self.agent, self.model_id = agent, model_id
        self.health = Health(self.config.recover_after)
        LOG.info("agent %s loaded; untrusted until %d healthy decisions", model_id,
                 self.config.recover_after)

    def decide(self, state: NetworkState, now: float) -> tuple[Decision, DecisionRecord]:
        """One interval: both decide, health is judged, the effective decision is returned."""
        started = time.perf_counter()
        fallback = self.fallback.decide(state)
        fallback_ms = (time.perf_counter() - started) * 1000
        matrix = state.last_matrix
        predicted = {"fallback": self._predict(state, fallback, matrix), "agent": None}
        agent_decision: Decision | None = None
        agent_ms: float | None = None
        reasons: list[str] = []
        transition = None
        if self.mode is Mode.EXTERNAL:
            agent_decision, agent_ms, reasons = self._run_external(state, now)
            use_agent = agent_decision is not None and not reasons
            if agent_decision is not None:
                predicted["agent"] = self._predict(state, agent_decision, matrix)
        elif self.agent is not None:
            agent_decision, agent_ms, reasons = self._run_agent(state, now)
            if agent_decision is not None:
                predicted["agent"] = self._predict(state, agent_decision, matrix)
                reasons += self._judge(state, agent_decision, predicted)
            transition = self.health.update(reasons)
            self._log_transition(transition)
            use_agent = (self.mode is Mode.ACTIVE and agent_decision is not None
                         and self.health.trusted)
        else:
            use_agent = False
        self.source = ("external" if self.mode is Mode.EXTERNAL else "agent") if use_agent \
            else "fallback"
        self._seq += 1
        record = DecisionRecord(
            seq=self._seq, time=now, mode=self.mode.value, source=self.source,
            model="external" if self.mode is Mode.EXTERNAL else self.model_id,
            trusted=self.health.trusted if self.agent else False,
            reasons=reasons, predicted_mlu=predicted,
            decision_ms={"fallback": fallback_ms, "agent": agent_ms},
            differ=(None if agent_decision is None
                    else not np.allclose(agent_decision.weights, fallback.weights, atol=1e-3)),
            transition=transition)
        self.log.append(record)
        return (agent_decision if use_agent and agent_decision is not None else fallback), record

    # -- health ------------------------------------------------------------------------------
    def _run_external(self, state: NetworkState, now: float) -> tuple[Decision | None, float,
                                                                      list[str]]:
        """An external decision passes the checks that protect the network (well-formed, no
        weight on a down link, fresh statistics) or the fallback is installed. It is judged
        alone, without hysteresis or the predicted-MLU margin: it is the experiment."""
        started = time.perf_counter()
        try:
            decision = self.external.decide(state)
        except ValueError as error:
            return None, 0.0, [f"external decision refused: {error}"]
        reasons = [f"malformed decision: {p}" for p in decision.validate(state.down_links)[:3]]
        if state.updated_at is None or now - state.updated_at > (
                self.config.stale_intervals * self.poll_interval_s):
            reasons.append(f"statistics older than {self.config.stale_intervals:g} intervals")
        return decision, (time.perf_counter() - started) * 1000, reasons

    def _run_agent(self, state: NetworkState, now: float) -> tuple[Decision | None, float | None,
                                                                   list[str]]:
        assert self.agent is not None, "decide() runs the agent only when there is one"
        reasons = []
        if state.updated_at is None or now - state.updated_at > (
                self.config.stale_intervals * self.poll_interval_s):
            reasons.append(f"statistics older than {self.config.stale_intervals:g} intervals")
        reference = training_demand(self.agent)
        matrix = state.last_matrix
        if reference and matrix is not None:
            total, factor = float(matrix.sum()), self.config.drift_factor
            if not reference / factor <= total <= reference * factor:
                reasons.append(f"input drift: total demand {total:.4g} Mbit/s is outside "
                               f"[1/{factor:g}, {factor:g}] x the training reference {reference:.4g}")
        if self._busy.is_set():
            return None, None, reasons + ["previous agent decision still running"]
        agent, snapshot = self.agent, _snapshot(state)
        self._busy.set()

        def call() -> Decision:
            try:
                return agent.decide(snapshot)
            finally:
                self._busy.clear()

        outcome = self.runner(call, self.config.budget_ms / 1000)
        if outcome.error == "timeout":
            return None, outcome.elapsed_ms, reasons + [
                f"decision slower than the {self.config.budget_ms:g} ms budget"]
        if outcome.error is not None:
            return None, outcome.elapsed_ms, reasons + [f"agent raised {outcome.error}"]
        decision = outcome.decision
        if not isinstance(decision, Decision) or decision.path_set is not state.path_set and \
                decision.path_set != state.path_set:
            return None, outcome.elapsed_ms, reasons + ["agent returned no decision for this "
                                                        "path set"]
        return decision, outcome.elapsed_ms, reasons

    def _judge(self, state: NetworkState, decision: Decision,
               predicted: dict[str, float | None]) -> list[str]:
        problems = decision.validate(state.down_links)
        # Name each kind of problem (the first of its kind), so none hides behind another.
        kinds = {"down link" if "down link" in p else p.split(":")[0]: p for p in reversed(problems)}
        reasons = [f"malformed decision: {problem}" for problem in list(kinds.values())[::-1][:4]]
        agent_mlu, fallback_mlu = predicted["agent"], predicted["fallback"]
        if agent_mlu is not None and fallback_mlu is not None and \
                agent_mlu > fallback_mlu * (1 + self.config.mlu_margin):
            reasons.append(f"predicted MLU {agent_mlu:.3f} worse than the fallback's "
                           f"{fallback_mlu:.3f} by more than {self.config.mlu_margin:.0%}")
        return reasons

    def _log_transition(self, change: str | None) -> None:
        if change == "untrusted":
            LOG.warning("agent %s untrusted, fallback takes over: %s", self.model_id,
                        "; ".join(self.health.reasons))
        elif change == "trusted":
            LOG.info("agent %s trusted again after %d healthy decisions", self.model_id,
                     self.config.recover_after)

    @staticmethod
    def _predict(state: NetworkState, decision: Decision, matrix) -> float | None:
        if matrix is None:
            return None
        return _finite(float(mlu(state.path_set, decision, matrix)))

    # -- the public API of the app and the REST resources (nothing outside sets attributes) ---
    def set_fallback(self, fallback: Policy) -> None:
        """A new topology version has a new fallback."""
        self.fallback = fallback

    def set_mode(self, mode: Mode) -> bool:
        """The operator's mode; True when it changed (the caller then decides at once)."""
        changed = Mode(mode) is not self.mode
        self.mode = Mode(mode)
        return changed

    def set_external_weights(self, weights: np.ndarray) -> None:
        """The decision handed in from outside, judged at the next :meth:`decide`."""
        self.external.weights = np.asarray(weights, dtype=np.float64)

    def measured(self, mlu_value: float) -> None:
        """The measured MLU of the interval the latest decision was installed for."""
        self.log.measured(mlu_value)

    def latest_record(self) -> DecisionRecord | None:
        return self.log.records[-1] if self.log.records else None

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` decision records as JSON, newest first."""
        return self.log.latest(limit)


def _snapshot(state: NetworkState) -> NetworkState:
    """A copy the agent may read in its own thread while the controller updates the original."""
    return NetworkState(state.graph.copy(), state.path_set, state.history_len,
                        history=deque(m.copy() for m in state.history),
                        loads_mbps=state.loads_mbps.copy(), down_links=set(state.down_links),
                        updated_at=state.updated_at)
