"""Adaptation in operation: fine-tune the current model on the most recent measured matrices.

Traffic shifts between weekdays and weekends and over weeks; a model fitted to earlier days lags
behind. The :class:`Adapter` keeps the recent measured matrices and their optimal MLU (an LP per
matrix, off the decision path), and every ``every`` new matrices fine-tunes a *copy* of the current
network for ``epochs`` passes over the samples of the last ``window`` matrices, holding back the
newest ``holdout`` samples. The candidate is published only when it scores better than the current
network on those held-back samples. Only matrices measured before a decision are ever used.

**Drift** triggers a round early: a measured matrix whose total demand lies outside the training
range recorded in the model's metadata (``observation.total_demand_mbps`` min..max) widened by
``drift_factor``, or whose traffic mix lies further from the training data than ``drift_factor``
times the largest training value of :func:`agents.agent.share_shift` (``observation.share_shift``),
starts a drift episode: it is logged (warning), counted in :class:`AdaptStats`
(``drift_events``, ``last_drift``), and the next round runs as soon as enough matrices are buffered
instead of waiting for ``every`` new ones (counted as ``early_rounds``). The episode ends with the
first matrix back in range; a model file without those metadata never reports drift.

The same object serves the controller (feed it measured matrices with :meth:`Adapter.observe`, call
:meth:`Adapter.step` in its own process, hot-swap what it returns) and the offline protocol
(:class:`AdaptivePolicy`, which ``ryute evaluate --adapt`` replays).
"""

from __future__ import annotations

import copy
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import torch

from agents.agent import AgentPolicy, FluidLoss, decode_torch, share_shift
from sim.decision import Decision
from sim.loads import od_demands
from sim.optimal import optimal_mlu
from sim.policy import check_path_set
from sim.state import NetworkState

log = logging.getLogger(__name__)


@dataclass
class AdaptConfig:
    every: int = 6  # new matrices between two fine-tuning rounds
    epochs: int = 5
    window: int = 144  # samples (decision intervals) fine-tuned on
    holdout: int = 3  # newest samples held back to validate the candidate
    batch_size: int = 32
    lr: float = 3e-4
    seed: int = 0
    drift_factor: float = 2.0  # how far beyond the training range a matrix is drift


@dataclass
class AdaptStats:
    rounds: int = 0
    published: int = 0
    seconds: float = 0.0
    last_gain: float = 0.0  # held-back ratio of the current model minus the candidate's
    drift_events: int = 0  # drift episodes started (a matrix out of range after in-range ones)
    drifted_matrices: int = 0  # matrices out of the training range
    early_rounds: int = 0  # rounds run before ``every`` new matrices because of drift
    last_drift: list[str] = field(default_factory=list)  # reasons of the latest drift episode
    log: list[dict] = field(default_factory=list)  # one entry per round


def drift_reasons(agent: AgentPolicy, od_demand: np.ndarray, factor: float = 2.0) -> list[str]:
    """Why per-OD demand ``od_demand`` [n_ods] is far from ``agent``'s training data (empty when it
    is not): total demand or traffic mix beyond the ranges in the model's metadata by ``factor``."""
    observed = agent.metadata.get("observation") or {}
    reasons = []
    total = float(od_demand.sum())
    span = observed.get("total_demand_mbps") or {}
    if "min" in span and "max" in span:
        low, high = span["min"] / factor, span["max"] * factor
        if not low <= total <= high:
            reasons.append(f"total demand {total:.4g} Mbit/s outside {low:.4g}..{high:.4g} "
                           f"(training range {span['min']:.4g}..{span['max']:.4g} widened "
                           f"{factor:g}x)")
    mix = observed.get("share_shift") or {}
    if "max" in mix:
        shift = share_shift(agent.net, agent.encoding, od_demand)
        if shift is not None and shift[0] > factor * mix["max"]:
            reasons.append(f"traffic mix shift {shift[0]:.3g} above {factor:g} x the training "
                           f"maximum {mix['max']:.3g}")
    return reasons


class Adapter:
    """Continual fine-tuning of ``agent`` (see the module docstring)."""

    def __init__(self, agent: AgentPolicy, graph: nx.DiGraph, config: AdaptConfig | None = None):
        self.agent = agent
        self.graph = graph
        self.config = config or AdaptConfig()
        c, h = self.config, agent.encoding.history
        self.demands: deque[np.ndarray] = deque(maxlen=c.window + h)
        self.optima: deque[float] = deque(maxlen=c.window + h)
        self.loss = FluidLoss(agent.encoding)
        self.pending = 0
        self.drifting = False  # inside a drift episode
        self.early = False  # a drift episode started since the last round
        self.stats = AdaptStats()
        torch.manual_seed(c.seed)

    def observe(self, tm: np.ndarray) -> list[str]:
        """Record one measured matrix [N, N] (Mbit/s); missing (all-zero) ones are skipped.
        Returns the drift reasons of the matrix (empty when it is within the training range)."""
        od = od_demands(self.agent.path_set, tm)
        if not od.sum() > 0:
            return []
        self.demands.append(od.astype(np.float32))
        self.optima.append(optimal_mlu(self.graph, tm))
        self.pending += 1
        reasons = drift_reasons(self.agent, od, self.config.drift_factor)
        if reasons:
            self.stats.drifted_matrices += 1
            if not self.drifting:
                self.stats.drift_events += 1
                self.stats.last_drift = reasons
                self.early = True
                log.warning("input drift (%s): adapting early", "; ".join(reasons))
        self.drifting = bool(reasons)
        return reasons

    def due(self) -> bool:
        h = self.agent.encoding.history
        enough = len(self.demands) >= h + self.config.holdout + 8
        return enough and (self.pending >= self.config.every or (self.early and self.pending > 0))

    def step(self) -> AgentPolicy | None:
        """Fine-tune when due; the new agent if it beats the current one on held-back samples."""
        if not self.due():
            return None
        started = time.perf_counter()
        early = self.early and self.pending < self.config.every
        self.stats.early_rounds += early
        self.pending, self.early = 0, False
        obs, dem, opt = self._samples()
        c = self.config
        train, held = slice(0, len(obs) - c.holdout), slice(len(obs) - c.holdout, len(obs))
        candidate = copy.deepcopy(self.agent.net).train()
        optimizer = torch.optim.AdamW(candidate.parameters(), lr=c.lr, weight_decay=0.0)
        live = torch.ones(self.agent.encoding.n_actions, dtype=torch.bool)
        n = train.stop
        for _ in range(c.epochs):
            for idx in torch.randperm(n).split(c.batch_size):
                w = decode_torch(self.agent.encoding, candidate(obs[idx]), live)
                loss = (self.loss.mlu(w, dem[idx]) / opt[idx]).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        candidate.eval()
        now, new = (self._score(net, obs[held], dem[held], opt[held])
                    for net in (self.agent.net, candidate))
        self.stats.rounds += 1
        self.stats.seconds += time.perf_counter() - started
        self.stats.last_gain = now - new
        self.stats.log.append({"round": self.stats.rounds, "early": early,
                               "held_back_current": now, "held_back_candidate": new,
                               "published": new < now})
        if new < now:
            self.stats.published += 1
            self.agent = AgentPolicy(candidate, self.agent.encoding, {
                **self.agent.metadata, "adapted": self.stats.published})
            return self.agent
        return None

    def _samples(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        enc = self.agent.encoding
        d = np.stack(self.demands)
        zeros, up = np.zeros(enc.path_set.n_links), np.ones(enc.path_set.n_links)
        obs = np.stack([enc.encode(d[j - enc.history:j], zeros, up)
                        for j in range(enc.history, len(d))])
        return (torch.from_numpy(obs), torch.from_numpy(d[enc.history:]),
                torch.tensor(list(self.optima)[enc.history:], dtype=torch.float32))

    def _score(self, net, obs, dem, opt) -> float:
        with torch.no_grad():
            w = decode_torch(self.agent.encoding, net(obs),
                             torch.ones(self.agent.encoding.n_actions, dtype=torch.bool))
            return float((self.loss.mlu(w, dem) / opt).mean())


class AdaptivePolicy:
    """A Policy that adapts while it is evaluated: before each decision it feeds the matrices that
    appeared in ``state.history`` since its last call to an :class:`Adapter` and swaps in what it
    publishes. The fine-tuning time counts in its decision time here (offline); in the controller
    the adapter runs in its own process."""

    name = "agent"

    def __init__(self, agent: AgentPolicy, graph: nx.DiGraph, config: AdaptConfig | None = None):
        self.adapter = Adapter(agent, graph, config)
        self._last_seen: np.ndarray | None = None

    @property
    def agent(self) -> AgentPolicy:
        return self.adapter.agent

    def decide(self, state: NetworkState) -> Decision:
        check_path_set(self.agent.path_set, state)
        for tm in self._new_matrices(state):
            self.adapter.observe(tm)
        self.adapter.step()
        return self.agent.decide(state)

    def _new_matrices(self, state: NetworkState) -> list[np.ndarray]:
        history = list(state.history)
        # NetworkState stores each pushed matrix as a new read-only array: identity marks them.
        start = 0
        for i in range(len(history) - 1, -1, -1):
            if history[i] is self._last_seen:
                start = i + 1
                break
        if history:
            self._last_seen = history[-1]
        return history[start:]
