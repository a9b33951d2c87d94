"""The decision loop: fallback and agent decide every interval; health says whose decision counts.

Plain objects, no os-ken: the app calls :meth:`DecisionLoop.decide` once per statistics interval
and installs the returned decision. Mode is what the operator asked for (``shadow`` or
``active``); health is what the loop observes. The agent's decision is installed only in active
mode while the agent is trusted; a finding against it (malformed weights, a down link, stale
statistics, drift, worse than the fallback) hands over to the fallback in the same interval,
and trust returns only after ``recover_after`` consecutive healthy decisions. A transient fault
(late, busy, raised) does not: the installed agent decision is held (source ``agent-held``)
while it is still safe, see :class:`HealthConfig`. Every record says what was installed and why.
"""
from __future__ import annotations

import enum
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
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
    """When the agent is not trusted, and when its last decision may be held. Every threshold
    is documented here and checked in :class:`DecisionLoop`.

    Two kinds of finding: a *transient fault* means the agent's output cannot be used now (it
    was late, is still busy with the previous call, or raised); the installed agent decision is
    then held while it is still safe (``hold_intervals``), and only ``transient_limit`` of them
    in a row make the agent untrusted. Every other finding (malformed or NaN weights, weight on
    a down link, stale statistics, input drift, predicted worse than the fallback) means the
    agent cannot be trusted: the fallback is installed in the same interval.
    """

    budget_ms: float = 50.0
    """An agent decision slower than this is not waited for (a transient fault)."""
    stale_intervals: float = 3.0
    """Statistics older than this many poll intervals make any decision blind."""
    mlu_margin: float = 0.10
    """Unhealthy when the agent's predicted MLU exceeds the fallback's by more than this share
    (and by more than ``mlu_floor``); a held decision must stay within the same margin."""
    mlu_floor: float = 0.02
    """Differences of predicted MLU below this are noise: on an idle network (MLU 0.004
    against 0.002) a relative margin says nothing, so "worse than the fallback" needs both."""
    drift_factor: float = 10.0
    """Unhealthy when the total demand is outside [1/f, f] x the model's training reference,
    unless the network is idle (``idle_mlu``)."""
    idle_mlu: float = 0.05
    """The network is idle, and no demand is drift, while the fallback's predicted MLU on the
    newest matrix is below this (or the demand is zero): no traffic is a normal state (a
    restart, a maintenance window, a ramp-up), and a network this empty cannot be congested by
    any split the "worse than the fallback" check lets through. Idleness is judged by MLU, not
    by a share of the training reference, because a demand far below the reference is also
    what a model trained for another scale sees on a loaded network: that stays drift."""
    recover_after: int = 3
    """Consecutive healthy decisions before the agent is trusted (again)."""
    transient_limit: int = 3
    """This many transient faults in a row make the agent untrusted."""
    hold_intervals: float = 3.0
    """On a transient fault the installed agent decision is held only while it is younger than
    this many poll intervals (and no link on its paths changed, and its predicted MLU on the
    newest matrix is within the margin of the fallback's); otherwise the fallback."""

    def __post_init__(self) -> None:
        problems = [f"{name} must be > 0, got {getattr(self, name)}"
                    for name in ("budget_ms", "stale_intervals", "drift_factor")
                    if not getattr(self, name) > 0]
        problems += [f"{name} must be >= 0, got {getattr(self, name)}"
                     for name in ("mlu_margin", "mlu_floor", "idle_mlu", "hold_intervals")
                     if not getattr(self, name) >= 0]
        problems += [f"{name} must be an integer >= 1, got {getattr(self, name)}"
                     for name in ("recover_after", "transient_limit")
                     if isinstance(getattr(self, name), bool)
                     or not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1)]
        if problems:
            raise ValueError("invalid health configuration: " + "; ".join(problems))

    def worse(self, mlu_value: float | None, fallback_mlu: float | None) -> bool:
        """Whether ``mlu_value`` is worse than the fallback's beyond both the relative margin and
        the absolute floor (False when either is unknown)."""
        if mlu_value is None or fallback_mlu is None:
            return False
        return mlu_value > max(fallback_mlu * (1 + self.mlu_margin),
                               fallback_mlu + self.mlu_floor)


FINDING_PREFIXES = (
    ("statistics older than", "stale"), ("input drift", "drift"),
    ("malformed decision", "malformed"), ("agent returned no decision", "malformed"),
    ("predicted MLU", "worse"), ("decision slower than", "late"),
    ("previous agent decision still running", "busy"), ("agent raised", "raised"))
"""How each reason this module writes begins, and its kind (a bounded metrics label)."""
FINDING_KINDS = ("stale", "drift", "malformed", "worse", "late", "busy", "raised",
                 "transient_limit", "other")


def finding_kind(reason: str) -> str:
    """The kind of a health reason (one of ``FINDING_KINDS``)."""
    for prefix, kind in FINDING_PREFIXES:
        if reason.startswith(prefix):
            return kind
    return "transient_limit" if "transient faults in a row" in reason else "other"


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
    """Trust with hysteresis. Starts untrusted: an agent earns trust by healthy decisions.

    A finding (a reason the agent cannot be trusted) makes it untrusted at once; a transient
    fault (its output cannot be used now) does only when it is the ``transient_limit``-th in a
    row. A transient fault neither counts as healthy nor resets the healthy streak."""

    recover_after: int = 3
    transient_limit: int = 3
    trusted: bool = False
    streak: int = 0
    transient_streak: int = 0
    reasons: list[str] = field(default_factory=lambda: ["no decision yet"])
    transitions: int = 0

    def update(self, findings: list[str], transient: Sequence[str] = ()) -> str | None:
        """Record one decision's findings and transient faults; returns "trusted"/"untrusted"
        on a transition."""
        findings, faults = list(findings), list(transient)
        if faults and not findings:
            self.transient_streak += 1
            if self.transient_streak < self.transient_limit:
                self.reasons = faults
                return None
            findings = [f"{self.transient_streak} transient faults in a row (limit "
                        f"{self.transient_limit})"]
        self.reasons = faults + findings
        if findings:
            self.streak = self.transient_streak = 0
            if self.trusted:
                self.trusted = False
                self.transitions += 1
                return "untrusted"
            return None
        self.transient_streak = 0
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
    action: str | None = None
    """What was done about the reasons, and why (a held decision, a fallback with no finding,
    a rollout's blend, widening or rollback)."""
    fraction: float | None = None
    """With source ``blend``: the share of the weight moved to the agent's split."""
    measured_mlu: float | None = None
    down_links: list[list[str]] = field(default_factory=list)
    """The links that were down when it was decided (``[src, dst]``)."""
    mode_changes: list[dict[str, Any]] | None = None
    """The operator's mode changes since the previous record: ``from``, ``to``, ``by`` (who
    asked: the API client's address and name) and ``at`` (epoch seconds), oldest first."""

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

    def latest(self, limit: int, before: int | None = None) -> list[dict[str, Any]]:
        """The last ``limit`` records (those older than seq ``before``, when given) as JSON,
        newest first."""
        records = [r for r in self.records if before is None or r.seq < before]
        return [record.to_json() for record in records[-limit:]][::-1] if limit > 0 else []

    def oldest_seq(self) -> int | None:
        return self.records[0].seq if self.records else None


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def training_demand(agent: Policy) -> float | None:
    """The mean total demand of the agent's training data (its input scale), if it says; None
    for a scale-free model (the generalist), whose input is the traffic mix only."""
    if getattr(agent, "metadata", {}).get("scale_free"):
        return None
    encoding = getattr(agent, "encoding", None)
    return getattr(encoding, "scale_reference", None)


ROLLOUT_FIELDS = ("fraction", "step", "ingress")


@dataclass
class Rollout:
    """Gradual activation: in active mode, move only ``fraction`` of each OD pair's weight from
    the fallback's split to the agent's (source ``blend``), only for the OD pairs entering at
    the ``ingress`` switches when given (a canary; the others keep the fallback's split).

    After every ``widen_after`` consecutive intervals whose *measured* MLU stays within the
    margin of the fallback's predicted MLU on the same matrix, ``fraction`` widens by ``step``
    (0: it stays); at 1 with no canary the agent's own decision is installed. One interval
    beyond the margin rolls back: the fallback is installed, the mode becomes shadow and
    ``rolled_back`` says why, until the operator activates again."""

    fraction: float = 1.0
    step: float = 0.0
    ingress: frozenset[str] | None = None
    widen_after: int = 3
    good: int = 0
    rolled_back: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) \
                or not 0 < self.fraction <= 1:
            problems.append(f"fraction must be a number in (0, 1], got {self.fraction!r}")
        if isinstance(self.step, bool) or not isinstance(self.step, (int, float)) \
                or not 0 <= self.step <= 1:
            problems.append(f"step must be a number in [0, 1], got {self.step!r}")
        if self.ingress is not None and (not self.ingress or not all(
                isinstance(name, str) and name for name in self.ingress)):
            problems.append("ingress must be a non-empty list of switch names")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_fields(cls, data: dict[str, Any], nodes: list[str] | None,
                    widen_after: int = 3) -> Rollout | None:
        """From the ``fraction``, ``step`` and ``ingress`` fields of a request or a config (None:
        none given, full activation). Unknown switch names raise ``ValueError``, when ``nodes``
        are known."""
        unknown = sorted(set(data) - set(ROLLOUT_FIELDS))
        if unknown:
            raise ValueError(f"unknown rollout field(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(ROLLOUT_FIELDS)}")
        given = {key: value for key, value in data.items() if value is not None}
        if not given:
            return None
        ingress: frozenset[str] | None = None
        if given.get("ingress") is not None:
            names = given["ingress"]
            if not isinstance(names, (list, tuple)) or not all(
                    isinstance(name, str) and name for name in names):
                raise ValueError("ingress must be a list of switch names")
            ingress = frozenset(names)
            missing = sorted(ingress - set(nodes)) if nodes is not None else []
            if missing:
                raise ValueError(f"no such switch(es) {', '.join(missing)}")
        return cls(fraction=given.get("fraction", 1.0), step=given.get("step", 0.0),
                   ingress=ingress, widen_after=widen_after)

    @property
    def full(self) -> bool:
        """Nothing left to blend: the agent's own decision."""
        return self.fraction >= 1 and self.ingress is None

    def blend(self, fallback: Decision, agent: Decision) -> Decision:
        """``fraction`` of each chosen OD pair's weight moved to the agent's split."""
        ps = agent.path_set
        share = np.full(ps.n_ods, float(self.fraction))
        if self.ingress is not None:
            share *= np.array([str(s) in self.ingress for s, _ in ps.od_pairs])
        per_path = share[ps.path_od]
        return Decision(ps, (1 - per_path) * fallback.weights + per_path * agent.weights)

    def view(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "step": self.step,
                "ingress": sorted(self.ingress) if self.ingress is not None else None,
                "widen_after": self.widen_after, "good_intervals": self.good,
                "rolled_back": self.rolled_back}

    def describe(self) -> str:
        where = f" of the OD pairs entering at {', '.join(sorted(self.ingress))}" \
            if self.ingress is not None else ""
        return f"rollout: {self.fraction:.0%} of the weight{where} on the agent's split"


@dataclass(frozen=True)
class Installed:
    """The agent decision last installed, with what it was made on (to judge holding it)."""

    decision: Decision
    seq: int
    made_at: float
    down_links: frozenset


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
        self.health = self._new_health()
        self.external = ExternalDecisions()
        self.source = "fallback"
        self.installed_agent: Installed | None = None
        self.rollout: Rollout | None = None
        self.latest: dict[str, Decision | None] = {"fallback": None, "agent": None}
        """The last decision of each policy (the agent's even when it was not installed)."""
        self._mode_changes: list[dict[str, Any]] = []
        self._busy = threading.Event()
        self._seq = 0

    def _new_health(self) -> Health:
        return Health(self.config.recover_after, self.config.transient_limit)

    def set_agent(self, agent: Policy | None, model_id: str | None) -> None:
        """A new model starts untrusted and earns trust like any other."""
        self.agent, self.model_id = agent, model_id
        self.health = self._new_health()
        self.installed_agent = None
        LOG.info("agent %s loaded; untrusted until %d healthy decisions", model_id,
                 self.config.recover_after)

    def set_mode(self, mode: Mode, rollout: Rollout | None = None,
                 by: str | None = None) -> None:
        """The operator's mode; ``rollout`` (active mode only) activates gradually. ``by``
        (who asked) records a change in the next decision record."""
        if rollout is not None and Mode(mode) is not Mode.ACTIVE:
            raise ValueError(f"a rollout (fraction, step, ingress) needs mode active, not "
                             f"{Mode(mode).value}")
        if Mode(mode) is not self.mode or rollout != self.rollout:
            LOG.warning("mode %s -> %s%s%s", self.mode.value, Mode(mode).value,
                        f" ({rollout.describe()})" if rollout else "", f" by {by}" if by else "")
            if by is not None:
                self._note_mode_change(Mode(mode), by, rollout)
        self.mode, self.rollout = Mode(mode), rollout

    def _note_mode_change(self, mode: Mode, by: str, rollout: Rollout | None = None) -> None:
        change = {"from": self.mode.value, "to": mode.value, "by": by, "at": time.time()}
        if rollout is not None:
            change["rollout"] = rollout.describe()
        self._mode_changes.append(change)

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
        transition = action = None
        installed, source = fallback, "fallback"
        if self.mode is Mode.EXTERNAL:
            agent_decision, agent_ms, reasons = self._run_external(state, now)
            if agent_decision is not None:
                predicted["agent"] = self._predict(state, agent_decision, matrix)
                if not reasons:
                    installed, source = agent_decision, "external"
        elif self.agent is not None:
            findings = self._input_findings(state, now, predicted["fallback"])
            agent_decision, agent_ms, finding, fault = self._run_agent(state)
            findings += [finding] if finding else []
            if agent_decision is not None:
                predicted["agent"] = self._predict(state, agent_decision, matrix)
                findings += self._judge(state, agent_decision, predicted)
            transition = self.health.update(findings, [fault] if fault else [])
            self._log_transition(transition)
            reasons = self.health.reasons
            rollout_note = self._judge_rollout(state, predicted)
            if self.mode is Mode.ACTIVE:
                installed, source, action = self._choose(state, now, fallback, agent_decision,
                                                         fault, predicted)
            if rollout_note:
                action = rollout_note + (f"; {action}" if action else "")
        self.source = source
        self._seq += 1
        if source in ("agent", "blend"):
            self.installed_agent = Installed(installed, self._seq, now,
                                             frozenset(state.down_links))
        elif source != "agent-held":
            self.installed_agent = None
        record = DecisionRecord(
            seq=self._seq, time=now, mode=self.mode.value, source=source,
            model="external" if self.mode is Mode.EXTERNAL else self.model_id,
            trusted=self.health.trusted if self.agent else False,
            reasons=list(reasons), predicted_mlu=predicted,
            decision_ms={"fallback": fallback_ms, "agent": agent_ms},
            differ=(None if agent_decision is None
                    else not np.allclose(agent_decision.weights, fallback.weights, atol=1e-3)),
            transition=transition, action=action,
            fraction=self.rollout.fraction if source == "blend" and self.rollout else None,
            down_links=sorted([str(u), str(v)] for u, v in state.down_links),
            mode_changes=self._mode_changes or None)
        self._mode_changes = []
        self.latest = {"fallback": fallback, "agent": agent_decision}
        self.log.append(record)
        return installed, record

    def _choose(self, state: NetworkState, now: float, fallback: Decision,
                fresh: Decision | None, fault: str | None,
                predicted: dict[str, float | None]) -> tuple[Decision, str, str | None]:
        """In active mode, after health is judged: the installed decision, its source, and what
        was done when that is not what the mode says (None: the agent's fresh decision)."""
        if not self.health.trusted:
            if self.health.reasons:
                return fallback, "fallback", None  # the reasons say why
            return fallback, "fallback", (
                f"the agent is healthy and earns trust: {self.health.streak} of "
                f"{self.config.recover_after} healthy decisions")
        if fault is None and fresh is not None:
            if self.rollout is None or self.rollout.full:
                return fresh, "agent", None
            blended = self.rollout.blend(fallback, fresh)
            predicted["blend"] = self._predict(state, blended, state.last_matrix)
            return blended, "blend", self.rollout.describe()
        held = self.installed_agent
        why_not = self._hold_problem(state, now, held, predicted)
        if held is None or why_not:
            return fallback, "fallback", f"transient fault: the fallback, not the agent's last " \
                                         f"decision ({why_not})"
        return held.decision, "agent-held", (
            f"transient fault: holding the agent's decision of seq {held.seq} (made "
            f"{now - held.made_at:.1f} s ago; predicted MLU {predicted['held']:.3f}, the "
            f"fallback's {predicted['fallback']:.3f})")

    def _judge_rollout(self, state: NetworkState,
                       predicted: dict[str, float | None]) -> str | None:
        """After an interval with a rollout's decision installed: roll back when the measured
        MLU was worse than the fallback's predicted MLU on the same matrix (beyond the margin
        and the floor), widen after ``widen_after`` good intervals. Returns what was done."""
        rollout = self.rollout
        if rollout is None or self.mode is not Mode.ACTIVE:
            return None
        if self.source not in ("blend", "agent-held"):
            rollout.good = 0  # good intervals count in a row, with the rollout's split installed
            return None
        measured, expected = _finite(state.mlu), predicted["fallback"]
        if measured is None or expected is None:
            return None
        if self.config.worse(measured, expected):
            rollout.rolled_back = (f"measured MLU {measured:.3f} worse than the fallback's "
                                   f"predicted {expected:.3f} on the same matrix at "
                                   f"{rollout.fraction:.0%}")
            self._note_mode_change(Mode.SHADOW, "the rollout's rollback")
            self.mode = Mode.SHADOW
            LOG.warning("rollout rolled back, mode shadow: %s", rollout.rolled_back)
            return f"rollback to the fallback, mode shadow: {rollout.rolled_back}"
        rollout.good += 1
        if rollout.step <= 0 or rollout.good < rollout.widen_after:
            return None
        before, rollout.fraction, rollout.good = rollout.fraction, \
            min(1.0, rollout.fraction + rollout.step), 0
        done = " (complete: the agent's own decision)" if rollout.full else ""
        LOG.info("rollout widened %.0f%% -> %.0f%%%s", before * 100, rollout.fraction * 100, done)
        return (f"rollout widened {before:.0%} -> {rollout.fraction:.0%} after "
                f"{rollout.widen_after} intervals with measured MLU within the margin of the "
                f"fallback's{done}")

    def _hold_problem(self, state: NetworkState, now: float, held: Installed | None,
                      predicted: dict[str, float | None]) -> str | None:
        """Why the installed agent decision ``held`` cannot stay installed (None: it can).
        Records its predicted MLU on the newest matrix as ``predicted["held"]``."""
        if held is None:
            return "none is installed"
        age_limit = self.config.hold_intervals * self.poll_interval_s
        if now - held.made_at > age_limit:
            return (f"seq {held.seq} is {now - held.made_at:.1f} s old, more than "
                    f"{self.config.hold_intervals:g} intervals")
        if held.decision.path_set != state.path_set:
            return f"the paths changed since seq {held.seq}"
        used = held.decision.weights > 0
        changed = [link for link in sorted(held.down_links ^ frozenset(state.down_links), key=str)
                   if (used & ~state.path_set.live_paths({link})).any()]
        if changed:
            return f"link {changed[0][0]}->{changed[0][1]} on its paths changed since seq {held.seq}"
        held_mlu = predicted["held"] = self._predict(state, held.decision, state.last_matrix)
        if held_mlu is None or predicted["fallback"] is None:
            return "no measured matrix to judge it on"
        if self.config.worse(held_mlu, predicted["fallback"]):
            return (f"its predicted MLU {held_mlu:.3f} is worse than the fallback's "
                    f"{predicted['fallback']:.3f} beyond the margin")
        return None

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
        stale = self._stale(state, now)
        return decision, (time.perf_counter() - started) * 1000, reasons + stale

    def _stale(self, state: NetworkState, now: float) -> list[str]:
        if state.updated_at is None or now - state.updated_at > (
                self.config.stale_intervals * self.poll_interval_s):
            return [f"statistics older than {self.config.stale_intervals:g} intervals"]
        return []

    def _input_findings(self, state: NetworkState, now: float,
                        fallback_mlu: float | None) -> list[str]:
        """Why no agent decision on this input can be trusted: stale statistics, drift.

        An idle network is not drift: zero demand, or so little that the fallback's predicted
        MLU is below ``idle_mlu``. No traffic is a normal state, not an unknown input."""
        findings = self._stale(state, now)
        reference = training_demand(self.agent) if self.agent is not None else None
        matrix = state.last_matrix
        if not reference or matrix is None:
            return findings
        total, factor = float(matrix.sum()), self.config.drift_factor
        idle = total <= 0 or (fallback_mlu is not None and fallback_mlu < self.config.idle_mlu)
        if not idle and not reference / factor <= total <= reference * factor:
            findings.append(f"input drift: total demand {total:.4g} Mbit/s is outside "
                            f"[1/{factor:g}, {factor:g}] x the training reference "
                            f"{reference:.4g}")
        return findings

    def _run_agent(self, state: NetworkState) -> tuple[Decision | None, float | None,
                                                       str | None, str | None]:
        """The agent's decision, its time, and a finding (it cannot be trusted) or a transient
        fault (its output cannot be used now: late, still busy, raised)."""
        assert self.agent is not None, "decide() runs the agent only when there is one"
        if self._busy.is_set():
            return None, None, None, "previous agent decision still running"
        agent, snapshot = self.agent, _snapshot(state)
        self._busy.set()

        def call() -> Decision:
            try:
                return agent.decide(snapshot)
            finally:
                self._busy.clear()

        outcome = self.runner(call, self.config.budget_ms / 1000)
        if outcome.error == "timeout":
            return None, outcome.elapsed_ms, None, \
                f"decision slower than the {self.config.budget_ms:g} ms budget"
        if outcome.error is not None:
            return None, outcome.elapsed_ms, None, f"agent raised {outcome.error}"
        decision = outcome.decision
        if not isinstance(decision, Decision) or decision.path_set is not state.path_set and \
                decision.path_set != state.path_set:
            return None, outcome.elapsed_ms, "agent returned no decision for this path set", None
        return decision, outcome.elapsed_ms, None, None

    def _judge(self, state: NetworkState, decision: Decision,
               predicted: dict[str, float | None]) -> list[str]:
        problems = decision.validate(state.down_links)
        # Name each kind of problem (the first of its kind), so none hides behind another.
        kinds = {"down link" if "down link" in p else p.split(":")[0]: p for p in reversed(problems)}
        reasons = [f"malformed decision: {problem}" for problem in list(kinds.values())[::-1][:4]]
        agent_mlu, fallback_mlu = predicted["agent"], predicted["fallback"]
        if self.config.worse(agent_mlu, fallback_mlu):
            reasons.append(f"predicted MLU {agent_mlu:.3f} worse than the fallback's "
                           f"{fallback_mlu:.3f} by more than {self.config.mlu_margin:.0%} "
                           f"and {self.config.mlu_floor:g}")
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

    def set_external_weights(self, weights: np.ndarray) -> None:
        """The decision handed in from outside, judged at the next :meth:`decide`."""
        self.external.weights = np.asarray(weights, dtype=np.float64)

    def measured(self, mlu_value: float) -> None:
        """The measured MLU of the interval the latest decision was installed for."""
        self.log.measured(mlu_value)

    def latest_record(self) -> DecisionRecord | None:
        return self.log.records[-1] if self.log.records else None

    def recent(self, limit: int, before: int | None = None) -> list[dict[str, Any]]:
        """The last ``limit`` decision records (older than seq ``before``, when given) as
        JSON, newest first."""
        return self.log.latest(limit, before)

    def oldest_seq(self) -> int | None:
        """The seq of the oldest decision record still in memory."""
        return self.log.oldest_seq()


def _snapshot(state: NetworkState) -> NetworkState:
    """A copy the agent may read in its own thread while the controller updates the original."""
    return NetworkState(state.graph.copy(), state.path_set, state.history_len,
                        history=deque(m.copy() for m in state.history),
                        loads_mbps=state.loads_mbps.copy(), down_links=set(state.down_links),
                        updated_at=state.updated_at)
