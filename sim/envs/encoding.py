"""Observation and action encoding of the TE environment (numpy only: no gymnasium, no torch).

One :class:`Encoding` object is the whole contract between the agent and the world: the gymnasium
environment builds its observations and decodes its actions with it, and the agent does the same at
decision time from a :class:`~sim.state.NetworkState`. Store its parameters (``history``,
``scale_reference``, ``logit_scale``, the path set's fingerprint) with a model.

Observation: a float32 vector, the concatenation of (see :attr:`Encoding.layout`)

=============== ================== ===========================================================
part            length             content
=============== ================== ===========================================================
``shares``      ``H * n_ods``      the last H usable matrices, oldest first, each as demand per
                                   OD pair (``path_set.od_pairs`` order) divided by its own total
                                   (each block sums to 1: the input is scale-free)
``log_scale``   ``H``              ``log(total / scale_reference)`` of the same matrices, clipped
                                   to ``[-LOG_SCALE_CLIP, LOG_SCALE_CLIP]`` (the scale, not lost)
``utilization`` ``L``              load / capacity per link (``path_set.edges`` order) under the
                                   routing installed for the newest matrix, clipped to
                                   ``[0, UTILIZATION_CLIP]``
``link_up``     ``L``              1.0 for a link that is up, 0.0 for a link that is down
=============== ================== ===========================================================

A matrix with no demand between OD pairs (an all-zero, i.e. missing, measurement) is never used:
it is skipped, never divided by.

Action: one value in ``[-1, 1]`` per *candidate* path (``path_set.candidate``, in path-id order);
``logit_scale * action`` are logits, turned into weights by a softmax per OD pair over its live
candidate paths. Paths that are not candidates (the baselines' extra paths) get weight 0. The
normalized ``[-1, 1]`` range is what SB3's Gaussian policies expect; the scale lets the weights of
one OD pair differ by up to ``exp(2 * logit_scale)``, enough to put all demand on one path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike

from sim.decision import Decision
from sim.loads import od_demands
from sim.paths import Link, PathSet
from sim.state import DEFAULT_HISTORY, NetworkState

#: Bound of the ``log_scale`` features: e^10 times the reference is far beyond any real series.
LOG_SCALE_CLIP = 10.0
#: Bound of the ``utilization`` features: beyond 10x overload the exact value tells nothing more.
UTILIZATION_CLIP = 10.0
DEFAULT_LOGIT_SCALE = 5.0


@dataclass(frozen=True, eq=False)
class Encoding:
    """Observation encoder and action decoder for one path set (see the module docstring).

    ``scale_reference`` (Mbit/s, > 0) is the total demand the ``log_scale`` features are relative
    to, typically the mean total of the training matrices; an agent must be served with the value
    it was trained with.
    """

    path_set: PathSet
    scale_reference: float
    history: int = DEFAULT_HISTORY
    logit_scale: float = DEFAULT_LOGIT_SCALE
    _live_cache: dict[frozenset[Link], np.ndarray] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if not (np.isfinite(self.scale_reference) and self.scale_reference > 0):
            raise ValueError(f"scale_reference must be finite and > 0, got {self.scale_reference}")
        if int(self.history) != self.history or self.history < 1:
            raise ValueError(f"history must be a positive integer, got {self.history!r}")
        if not (np.isfinite(self.logit_scale) and self.logit_scale > 0):
            raise ValueError(f"logit_scale must be finite and > 0, got {self.logit_scale}")
        if (self.candidates_per_od == 0).any():
            od = self.path_set.od_pairs[int(np.argmin(self.candidates_per_od))]
            raise ValueError(f"OD pair {od[0]}->{od[1]} has no candidate path")

    # ------------------------------------------------------------------ sizes and layout
    @cached_property
    def candidate_ids(self) -> np.ndarray:
        """Path id of each action entry, [C]."""
        return np.flatnonzero(self.path_set.candidate)

    @cached_property
    def candidate_od(self) -> np.ndarray:
        """OD index of each action entry, [C] (non-decreasing: an OD pair's entries are adjacent)."""
        return self.path_set.path_od[self.candidate_ids]

    @cached_property
    def candidates_per_od(self) -> np.ndarray:
        return np.bincount(self.candidate_od, minlength=self.path_set.n_ods)

    @cached_property
    def _starts(self) -> np.ndarray:
        """First action entry of each OD pair (for ``reduceat``)."""
        return np.concatenate([[0], np.cumsum(self.candidates_per_od)[:-1]])

    @property
    def n_actions(self) -> int:
        return len(self.candidate_ids)

    @cached_property
    def layout(self) -> dict[str, slice]:
        """Where each part of the observation lies: ``shares``, ``log_scale``, ``utilization``,
        ``link_up``."""
        sizes = {
            "shares": self.history * self.path_set.n_ods,
            "log_scale": self.history,
            "utilization": self.path_set.n_links,
            "link_up": self.path_set.n_links,
        }
        ends = np.cumsum(list(sizes.values()))
        return {name: slice(int(end - n), int(end)) for (name, n), end in zip(sizes.items(), ends)}

    @property
    def n_observations(self) -> int:
        return self.layout["link_up"].stop

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` float32 vectors of every observation entry."""
        low = np.zeros(self.n_observations, np.float32)
        high = np.ones(self.n_observations, np.float32)
        low[self.layout["log_scale"]] = -LOG_SCALE_CLIP
        high[self.layout["log_scale"]] = LOG_SCALE_CLIP
        high[self.layout["utilization"]] = UTILIZATION_CLIP
        return low, high

    # ------------------------------------------------------------------ observations
    def encode(self, od_history: np.ndarray, loads_mbps: ArrayLike, link_up: ArrayLike) -> np.ndarray:
        """The observation from exactly H per-OD demand vectors ``od_history`` [H, n_ods] (oldest
        first, each with a positive total), link loads [L] (Mbit/s) and the link-up mask [L]."""
        od_history = np.asarray(od_history, np.float64)
        totals = od_history.sum(axis=1)
        if od_history.shape != (self.history, self.path_set.n_ods) or not (totals > 0).all():
            raise ValueError(f"need {self.history} demand vectors of {self.path_set.n_ods} OD "
                             f"pairs with positive totals, got shape {od_history.shape}")
        util = np.asarray(loads_mbps, np.float64) / self.path_set.capacities
        return np.concatenate([
            (od_history / totals[:, None]).reshape(-1),
            np.clip(np.log(totals / self.scale_reference), -LOG_SCALE_CLIP, LOG_SCALE_CLIP),
            np.clip(util, 0.0, UTILIZATION_CLIP),
            np.asarray(link_up, np.float64),
        ]).astype(np.float32)

    def observe(
        self, matrices: Sequence[ArrayLike], loads_mbps: ArrayLike, down_links: Iterable[Link] = ()
    ) -> np.ndarray:
        """The observation from recent traffic matrices [N, N] (oldest first, Mbit/s).

        Matrices without OD demand (missing measurements) are skipped; the newest H others are
        used, and when there are fewer (e.g. just after a controller start) the oldest is repeated.
        Raises ``ValueError`` when no matrix has demand.
        """
        if len(matrices) == 0:
            raise ValueError("no traffic matrix observed yet")
        od = od_demands(self.path_set, np.asarray(matrices, np.float64))
        od = od[od.sum(axis=1) > 0][-self.history:]
        if len(od) == 0:
            raise ValueError("no traffic matrix with demand observed yet")
        od = np.concatenate([np.repeat(od[:1], self.history - len(od), axis=0), od])
        return self.encode(od, loads_mbps, ~self.path_set.link_mask(down_links))

    def observe_state(self, state: NetworkState) -> np.ndarray:
        """The observation of a :class:`NetworkState`: what the agent sees in the controller."""
        return self.observe(list(state.history), state.loads_mbps, state.down_links)

    # ------------------------------------------------------------------ actions
    def live_candidates(self, down_links: Iterable[Link] = ()) -> np.ndarray:
        """Bool [C]: action entries whose path uses no down link."""
        key = frozenset(down_links)
        if key not in self._live_cache:
            live = self.path_set.live_paths(key)[self.candidate_ids]
            dead_ods = np.flatnonzero(np.add.reduceat(live, self._starts) == 0)
            if len(dead_ods):
                s, d = self.path_set.od_pairs[dead_ods[0]]
                raise ValueError(f"OD pair {s}->{d} has no live candidate path "
                                 f"({len(dead_ods)} OD pairs in all)")
            self._live_cache[key] = live
        return self._live_cache[key]

    def weights(self, action: ArrayLike, down_links: Iterable[Link] = ()) -> np.ndarray:
        """Path weights [P] (or [B, P] for actions [B, C]), normalized per OD pair, zero on paths
        through ``down_links`` and on non-candidate paths. Actions are clipped to ``[-1, 1]``."""
        a = np.asarray(action, np.float64)
        if a.shape[-1:] != (self.n_actions,) or a.ndim > 2:
            raise ValueError(f"action has shape {a.shape}, expected ({self.n_actions},) or (B, C)")
        if not np.isfinite(a).all():
            raise ValueError("action has non-finite entries")
        logits = np.where(self.live_candidates(down_links), self.logit_scale * np.clip(a, -1, 1),
                          -np.inf)
        # subtract the per-OD maximum so exp never overflows
        top = np.maximum.reduceat(logits, self._starts, axis=-1)
        e = np.exp(logits - top[..., self.candidate_od])
        e /= np.add.reduceat(e, self._starts, axis=-1)[..., self.candidate_od]
        w = np.zeros(a.shape[:-1] + (self.path_set.n_paths,))
        w[..., self.candidate_ids] = e
        return w

    def decision(self, action: ArrayLike, down_links: Iterable[Link] = ()) -> Decision:
        """The :class:`Decision` of one action [C]."""
        return Decision(self.path_set, self.weights(action, down_links))

    def action(self, weights: ArrayLike | Decision) -> np.ndarray:
        """An action (float32 [C], or [B, C] for weights [B, P]) that decodes to ``weights``.

        The inverse of :meth:`weights` (e.g. to imitate LP-optimal splits): exact for weights on
        candidate paths whose ratios within an OD pair stay above ``exp(-2 * logit_scale)``; smaller
        weights become that floor. Weight on non-candidate paths is dropped (an OD pair with none
        on its candidates gets an equal split). Down links are the decoder's business: dead paths
        are masked when the action is decoded.
        """
        w = weights.weights if isinstance(weights, Decision) else np.asarray(weights, np.float64)
        if w.shape[-1:] != (self.path_set.n_paths,) or w.ndim > 2:
            raise ValueError(f"weights have shape {w.shape}, expected ({self.path_set.n_paths},) "
                             "or (B, P)")
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("weights must be finite and non-negative")
        c = w[..., self.candidate_ids]
        c = np.where((np.add.reduceat(c, self._starts, axis=-1) > 0)[..., self.candidate_od], c, 1.0)
        with np.errstate(divide="ignore"):
            log_c = np.log(c)
        # the largest weight of each OD pair maps to +1, the others below it by log ratio / scale
        rel = log_c - np.maximum.reduceat(log_c, self._starts, axis=-1)[..., self.candidate_od]
        return np.clip(1.0 + rel / self.logit_scale, -1.0, 1.0).astype(np.float32)
