"""The gymnasium environment over the TE core: replay a traffic series, route it, score it.

At every step the agent sees the last H usable traffic matrices before interval t (plus the link
utilizations its previous routing produced and which links are up), chooses path weights, and is
scored on matrix t, the **next** one: the agent learns to route the future, as it must in the
controller. The encoding of observations and actions is :class:`sim.envs.encoding.Encoding`
(layout there), shared with the agent at decision time.

Reward: ``-(MLU of the decision on matrix t) / (optimal MLU of matrix t)``, the optimum over all
paths (multi-commodity flow LP, :func:`sim.optimal.optimal_mlu`, with the episode's link down if
any). It is <= -1, and -1 is the physical limit. ``info`` holds ``mlu``, ``optimal_mlu``, ``ratio``,
``t`` (index of matrix t in the series) and ``down_links``.

Episodes: ``episode_length`` consecutive decision intervals from a random start (or the whole range
with ``episode_length=None``); an episode ends with ``truncated=True`` (the traffic goes on, so a
value function should bootstrap), never ``terminated``. Decision intervals are the usable matrices
(with demand between OD pairs: all-zero, missing matrices are skipped) that have H usable ones
before them. With ``failure_prob`` an episode has one physical link down (both directions), chosen
among the links whose loss leaves every OD pair a live candidate path.

Registered as ``ryute/TE-v0`` by ``import sim`` (or ``import ryute``):
``gymnasium.make("ryute/TE-v0", topology="abilene", traffic=...)``; without any import,
``gymnasium.make("sim.env:ryute/TE-v0", ...)`` (gymnasium imports the module named before the
colon).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import networkx as nx
import numpy as np
from gymnasium import spaces
from numpy.typing import ArrayLike

from sim import ENV_ID  # noqa: F401  (registered there; importers take it from here too)
from sim.decision import Decision
from sim.envs.encoding import DEFAULT_LOGIT_SCALE, Encoding
from sim.loads import link_loads, mlu, od_demands, utilization
from sim.optimal import optimal_series
from sim.paths import Link, PathSet
from sim.state import DEFAULT_HISTORY
from topologies.catalog import load_topology
from topologies.traffic import TrafficSeries, load_series

log = logging.getLogger(__name__)



class TEEnv(gym.Env[np.ndarray, np.ndarray]):
    """Traffic engineering on a replayed traffic series (see the module docstring).

    Args:
        topology: a catalog spec (``"abilene"``, ``"ring:n=6"``, a file) or a graph.
        traffic: a :class:`TrafficSeries` (any node order: it is aligned to the topology), a
            ``.tm.npz`` path, or ``"synthetic"`` / ``"synthetic:steps=576,seed=1,load=0.3"`` for
            the project's generator (one week, seed 0 by default).
        history: H, the number of past matrices observed.
        paths_k, path_method: the candidate paths (:meth:`PathSet.from_graph`).
        episode_length: decisions per episode; None replays the whole range from its start.
        failure_prob: probability that an episode has one physical link down.
        interval_range: ``(start, stop)`` indices of the series (Python slice semantics) where the
            decision intervals (the scored matrices t) lie; history before ``start`` may be read,
            as it is the past. Use disjoint ranges of one series for training and validation.
        scale_reference: Mbit/s that the ``log_scale`` features are relative to; default: the
            mean total OD demand of the usable matrices before ``stop``. Give evaluation
            environments the training environment's value (:attr:`encoding`).
        logit_scale: action -> logit factor (see :class:`Encoding`).
        cache_dir: where the optima are cached (default :func:`sim.optimal.default_cache_dir`).
    """

    metadata: dict[str, Any] = {"render_modes": []}  # gymnasium's Env declares it so

    def __init__(
        self,
        topology: str | os.PathLike | nx.DiGraph = "abilene",
        traffic: TrafficSeries | str | os.PathLike = "synthetic",
        *,
        history: int = DEFAULT_HISTORY,
        paths_k: int = 4,
        path_method: str = "hops",
        episode_length: int | None = 64,
        failure_prob: float = 0.0,
        interval_range: tuple[int | None, int | None] = (None, None),
        scale_reference: float | None = None,
        logit_scale: float = DEFAULT_LOGIT_SCALE,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        if int(history) != history or history < 1:
            raise ValueError(f"history must be a positive integer, got {history!r}")
        if episode_length is not None and episode_length < 1:
            raise ValueError(f"episode_length must be >= 1 or None, got {episode_length}")
        if not 0.0 <= failure_prob <= 1.0:
            raise ValueError(f"failure_prob must be in [0, 1], got {failure_prob}")
        self.graph = topology if isinstance(topology, nx.DiGraph) else load_topology(topology)
        self.series = load_series(traffic, self.graph)
        self.path_set = PathSet.from_graph(self.graph, k=paths_k, method=path_method)
        self.episode_length = episode_length
        self.failure_prob = float(failure_prob)
        self.cache_dir = cache_dir

        # Per-OD demands of every matrix; "usable" ones have demand and are the only ones ever
        # observed or scored. A decision interval needs H usable matrices before it.
        self._od = od_demands(self.path_set, self.series.tm)
        self._usable = np.flatnonzero(self._od.sum(axis=1) > 0)
        start, stop, _ = slice(*interval_range).indices(len(self.series))
        candidates = self._usable[history:]
        self.decision_times = candidates[(candidates >= start) & (candidates < stop)]
        needed = episode_length or 1
        if len(self.decision_times) < needed:
            raise ValueError(
                f"{self.series.source}: {len(self.decision_times)} decision intervals in "
                f"[{start}, {stop}) (usable matrices with {history} usable ones before them), "
                f"an episode needs {needed}")
        if scale_reference is None:
            before = self._usable[self._usable < stop]
            scale_reference = float(self._od[before].sum(axis=1).mean())
        self.encoding = Encoding(self.path_set, scale_reference, history, logit_scale)
        self.failable_links = self._failable_links()

        low, high = self.encoding.observation_bounds()
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (self.encoding.n_actions,), dtype=np.float32)

        self._optima: dict[frozenset[Link], np.ndarray] = {}
        self._ensure_optima(self.decision_times, frozenset())
        self._episode = self.decision_times[:0]
        self._step = 0
        self._down: frozenset[Link] = frozenset()
        self._up = np.ones(self.path_set.n_links, bool)
        self._loads = np.zeros(self.path_set.n_links)
        log.info(
            "TE env %s: %d OD pairs, %d candidate paths, %d decision intervals in [%d, %d), "
            "%d failable links", self.graph.graph.get("name", ""), self.path_set.n_ods,
            self.encoding.n_actions, len(self.decision_times), start, stop,
            len(self.failable_links))

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode. ``options`` may fix ``"start"`` (a decision interval, an index of the
        series) and ``"down_link"`` (a link ``(u, v)``: it goes down in both directions; None:
        no failure), both drawn at random otherwise."""
        super().reset(seed=seed)
        options = options or {}
        self._episode = self._draw_episode(options.get("start"))
        self._down = self._draw_failure(options.get("down_link", ...))
        self._up = ~self.path_set.link_mask(self._down)
        self._ensure_optima(self._episode, self._down)
        self._step = 0
        # Before the first decision the network carries the previous matrix on an equal split
        # (the decoding of a zero action), so the utilization features start plausible.
        previous = self._previous(self._episode[0])
        self._loads = link_loads(self.path_set, self.encoding.weights(
            np.zeros(self.encoding.n_actions), self._down), self.series.tm[previous])
        return self._observe(self._episode[0]), {"t": int(self._episode[0]),
                                                 "down_links": self.down_links}

    def step(self, action: ArrayLike) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Route matrix t with ``action`` and move on to the next decision interval."""
        if self._step >= len(self._episode):
            raise RuntimeError("the episode is over: call reset()")
        t = int(self._episode[self._step])
        weights = self.encoding.weights(action, self._down)
        value, self._loads, extra = self._route(t, weights)
        optimum = float(self._optima[self._down][t])
        self._step += 1
        truncated = self._step == len(self._episode)
        # The last observation is that of the interval after t (valid even past the series' end).
        after = self._episode[self._step] if not truncated else t + 1
        info = {"mlu": value, "optimal_mlu": optimum, "ratio": value / optimum, "t": t,
                "down_links": self.down_links, **extra}
        return self._observe(after), -value / optimum, False, truncated, info

    def _route(self, t: int, weights: np.ndarray) -> tuple[float, np.ndarray, dict[str, Any]]:
        """The routing hook of :meth:`step`: carry matrix t on path ``weights`` [P] and return
        its MLU, the link loads [L] (Mbit/s, ``path_set.edges`` order) the next observation
        sees, and entries to add to ``info``. Here the fluid model; an environment that routes
        elsewhere (real switches: :class:`lab.mininet_env.MininetTEEnv`) overrides only this."""
        loads = link_loads(self.path_set, weights, self.series.tm[t])
        return float(utilization(self.path_set, loads).max()), loads, {}

    # ------------------------------------------------------------------ helpers for agents
    @property
    def down_links(self) -> tuple[Link, ...]:
        """The directed links down in the current episode."""
        return tuple(sorted(self._down, key=self.path_set.edges.index))

    def decision_from_action(
        self, action: ArrayLike, down_links: Iterable[Link] | None = None
    ) -> Decision:
        """The decision an action stands for (``down_links``: default the current episode's)."""
        return self.encoding.decision(action, self._down if down_links is None else down_links)

    def action_from_weights(self, weights: ArrayLike | Decision) -> np.ndarray:
        """An action that decodes to ``weights`` [P] (e.g. an LP-optimal split); see
        :meth:`Encoding.action`."""
        return self.encoding.action(weights)

    def optimal_mlu(self, times: ArrayLike, down_links: Iterable[Link] = ()) -> np.ndarray:
        """Optimal MLU of the matrices at ``times`` (usable indices of the series), solved on
        first use and cached."""
        times = np.asarray(times, dtype=np.int64)
        down = frozenset(down_links)
        self._ensure_optima(times, down)
        return self._optima[down][times]

    def score(
        self, weights: ArrayLike, times: ArrayLike, down_links: Iterable[Link] = ()
    ) -> np.ndarray:
        """MLU / optimal MLU of normalized weights [B, P] on the matrices at ``times`` [B], in one
        vectorized call of the core (for imitation, DOTE-style training and benchmarks).

        Decoded actions are such weights: ``score(env.encoding.weights(actions), times)``.
        """
        times = np.asarray(times, dtype=np.int64)
        return mlu(self.path_set, weights, self.series.tm[times]) / self.optimal_mlu(
            times, down_links)

    # ------------------------------------------------------------------ internals
    def _previous(self, t: int) -> int:
        """The last usable interval before t."""
        return int(self._usable[np.searchsorted(self._usable, t) - 1])

    def _observe(self, t: int) -> np.ndarray:
        """The observation for deciding interval t: the H usable matrices before it."""
        j = np.searchsorted(self._usable, t)
        past = self._usable[j - self.encoding.history : j]
        return self.encoding.encode(self._od[past], self._loads, self._up)

    def _draw_episode(self, start: int | None) -> np.ndarray:
        times = self.decision_times
        length = self.episode_length or len(times)
        if start is not None:
            i = int(np.searchsorted(times, start))
            if i >= len(times) or times[i] != start:
                raise ValueError(f"start {start} is not a decision interval of this env")
        elif self.episode_length is None:
            i = 0
        else:
            i = int(self.np_random.integers(len(times) - length + 1))
        return times[i : i + length]

    def _draw_failure(self, link: Link | None | Any) -> frozenset[Link]:
        if link is ...:  # not given: draw
            if not self.failable_links or self.np_random.random() >= self.failure_prob:
                return frozenset()
            link = self.failable_links[int(self.np_random.integers(len(self.failable_links)))]
        if link is None:
            return frozenset()
        u, v = link
        down = frozenset(e for e in ((u, v), (v, u)) if e in self.path_set.edges)
        if not down:
            raise ValueError(f"{u}->{v} is not a link of this topology")
        self.encoding.live_candidates(down)  # raises when an OD pair would be cut off
        return down

    def _failable_links(self) -> list[Link]:
        """Physical links (one direction named) whose loss leaves every OD pair a live candidate."""
        links, seen = [], set()
        for u, v in self.path_set.edges:
            if frozenset((u, v)) in seen:
                continue
            seen.add(frozenset((u, v)))
            try:
                self.encoding.live_candidates({(u, v), (v, u)})
                links.append((u, v))
            except ValueError:
                log.debug("link %s-%s is not failable: it would cut an OD pair off", u, v)
        return links

    def _ensure_optima(self, times: np.ndarray, down: frozenset[Link]) -> None:
        """Solve (or read from the disk cache) the optima of ``times`` not yet known."""
        known = self._optima.setdefault(down, np.full(len(self.series), np.nan))
        missing = np.unique(times[np.isnan(known[times])])
        if not len(missing):
            return
        started = time.perf_counter()
        known[missing] = optimal_series(self.graph, self.series.tm[missing], down_links=down,
                                        cache_dir=self.cache_dir)
        if not (known[missing] > 0).all():
            raise ValueError("some requested intervals have no demand: they cannot be scored")
        log.debug("optima of %d matrices (down %s) in %.2fs", len(missing), sorted(down),
                  time.perf_counter() - started)


