"""The non-learned routing methods every result is compared with, and the fallback
(:func:`fallback_policy`: ``invcap`` with ECMP ties).

All are :class:`~sim.policy.Policy` objects over one :class:`~sim.paths.PathSet`, so they are
evaluated, shadowed and installed exactly like the agent (one weight per path label). Shortest paths
are recomputed on the live graph at every decision, restricted to the paths of the set (a path
outside the set has no label to route on). Ties between equal-cost paths follow the path set's rule:
lowest sequence of node positions first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from sim.decision import Decision
from sim.optimal import path_optimal
from sim.paths import METRICS, Link, PathSet
from sim.policy import Policy, check_path_set
from sim.state import NetworkState

log = logging.getLogger(__name__)


def shortest_path_decision(
    path_set: PathSet, metric: str = "hops", ecmp_ties: bool = False,
    down_links: Iterable[Link] = (), strict: bool = True,
) -> Decision:
    """Each OD pair on its cheapest live path under ``metric`` ("hops" or "invcap").

    With ``ecmp_ties`` the demand is split equally over all equal-cost cheapest live paths, else it
    all goes on the first of them (lowest node-position sequence). An OD pair with no live path in
    the set raises ``ValueError``, or with ``strict=False`` is routed as if no link were down (its
    demand cannot be carried anyway; the controller keeps well-formed groups meanwhile).
    """
    ps = path_set
    live = ps.live_paths(down_links)
    stranded = np.add.reduceat(live.astype(np.int64), ps.od_ptr[:-1]) == 0
    if stranded.any():
        if strict:
            s, d = ps.od_pairs[int(np.flatnonzero(stranded)[0])]
            raise ValueError(f"no live path in the path set for OD {s}->{d}")
        live = live | stranded[ps.path_od]
    cost = np.where(live, ps.cost(metric), np.inf)
    best = np.minimum.reduceat(cost, ps.od_ptr[:-1])
    tied = live & (cost == best[ps.path_od])
    if not ecmp_ties:
        rank = np.where(tied, ps.lex_rank, np.iinfo(np.int64).max)
        tied = rank == np.minimum.reduceat(rank, ps.od_ptr[:-1])[ps.path_od]
    return Decision(ps, tied.astype(np.float64))


@dataclass(frozen=True, eq=False)
class ShortestPathPolicy:
    """Shortest path routing: ``sp`` (hops), ``invcap`` (OSPF default, the fallback), ``ecmp``."""

    path_set: PathSet
    metric: str = "hops"
    ecmp_ties: bool = False
    name: str = "sp"
    strict: bool = True
    """False: an OD pair with no live path keeps its no-failure route (the controller's use)."""

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; choose one of {METRICS}")

    def decide(self, state: NetworkState) -> Decision:
        check_path_set(self.path_set, state)
        return self.decision(state.down_links)

    def decision(self, down_links: Iterable[Link] = ()) -> Decision:
        """The decision with ``down_links`` down (the traffic does not matter to shortest paths)."""
        return shortest_path_decision(self.path_set, self.metric, self.ecmp_ties, down_links,
                                      self.strict)


def fallback_policy(path_set: PathSet, strict: bool = False) -> ShortestPathPolicy:
    """The fallback: shortest live paths under inverse-capacity weights (OSPF's default), the
    demand split equally over equal-cost ones (ECMP ties). Named ``invcap``.

    It is what the controller installs whenever the agent's decision is not (shadow mode, no
    model, unhealthy agent), so the experiments and tests that compare with "the fallback" build
    it here too. ``strict=False`` (the controller's rule): an OD pair whose paths are all down keeps
    its no-failure route (its demand cannot be carried; the groups stay well-formed) instead of
    raising ``ValueError``. With every link up ``strict`` makes no difference. The ``invcap``
    baseline of :data:`BASELINES` differs: it puts each OD pair on its first cheapest path only.
    """
    return ShortestPathPolicy(path_set, "invcap", ecmp_ties=True, name="invcap", strict=strict)


def last_matrix(history: Sequence[np.ndarray]) -> np.ndarray | None:
    """The newest matrix with demand: ``lp_last``'s forecast of the next one."""
    usable = [m for m in history if m.any()]
    return usable[-1] if usable else None


def linear_trend(history: Sequence[np.ndarray], window: int = 12) -> np.ndarray | None:
    """Per OD pair, the least-squares line through the last ``window`` matrices with demand,
    extended one interval ahead and clipped at zero: the forecast of FIGRET's Pred-TE
    (``lp_pred``). With fewer than 3 matrices, the newest one."""
    usable = [m for m in history if m.any()][-window:]
    if len(usable) < 3:
        return usable[-1] if usable else None
    y = np.stack(usable).reshape(len(usable), -1)
    t = np.arange(len(usable), dtype=np.float64)
    slope = ((t - t.mean()) @ (y - y.mean(axis=0))) / ((t - t.mean()) ** 2).sum()
    ahead = y.mean(axis=0) + slope * (len(usable) - t.mean())
    return np.maximum(ahead, 0.0).reshape(usable[-1].shape)


@dataclass(frozen=True, eq=False)
class LpForecastPolicy:
    """Prediction-based TE: the LP-optimal split over the candidate paths for a forecast of the
    next matrix (``lp_last``: the previous matrix; ``lp_pred``: a linear trend per OD pair).

    Uses the candidate paths (all live paths of the set for an OD pair whose candidates are all
    down). OD pairs without demand in the forecast, and every OD pair when there is no usable
    history yet, follow ``fallback``.
    """

    path_set: PathSet
    forecast: Callable[[Sequence[np.ndarray]], np.ndarray | None] = last_matrix
    fallback: Policy | None = None
    name: str = "lp_last"

    def decide(self, state: NetworkState) -> Decision:
        check_path_set(self.path_set, state)
        fallback = self.fallback or ShortestPathPolicy(self.path_set, "invcap", name="invcap")
        base = fallback.decide(state)
        predicted = self.forecast(list(state.history))
        if predicted is None or not predicted.any():
            return base
        ps = self.path_set
        live = ps.live_paths(state.down_links)
        cand_alive = np.add.reduceat((live & ps.candidate).astype(np.int64), ps.od_ptr[:-1])
        candidates_only = bool((cand_alive > 0).all())
        if not candidates_only:
            log.debug("some OD pair has no live candidate path: using every live path")
        return path_optimal(ps, predicted, candidates_only, state.down_links, fill=base)[1]


def LpLastPolicy(path_set: PathSet, fallback: Policy | None = None) -> LpForecastPolicy:  # noqa: N802
    """``lp_last``: the LP-optimal split of the previous interval's matrix."""
    return LpForecastPolicy(path_set, last_matrix, fallback, "lp_last")


def _sp(path_set: PathSet) -> Policy:
    return ShortestPathPolicy(path_set, "hops", name="sp")


def _invcap(path_set: PathSet, ecmp_ties: bool = False) -> Policy:
    return ShortestPathPolicy(path_set, "invcap", ecmp_ties, name="invcap")


def _ecmp(path_set: PathSet) -> Policy:
    return ShortestPathPolicy(path_set, "hops", True, name="ecmp")


def _lp_last(path_set: PathSet, fallback: Policy | None = None) -> Policy:
    return LpLastPolicy(path_set, fallback)


def _lp_pred(path_set: PathSet, fallback: Policy | None = None) -> Policy:
    return LpForecastPolicy(path_set, linear_trend, fallback, "lp_pred")


#: name -> factory(path_set, **options)
BASELINES: dict[str, Callable[..., Policy]] = {
    "sp": _sp,
    "invcap": _invcap,
    "ecmp": _ecmp,
    "lp_last": _lp_last,
    "lp_pred": _lp_pred,
}


def make_policy(name: str, path_set: PathSet, **kw) -> Policy:
    """Build baseline ``name`` (one of :data:`BASELINES`) for ``path_set``.

    Options: ``invcap`` takes ``ecmp_ties``; ``lp_last`` and ``lp_pred`` take ``fallback``.
    """
    try:
        factory = BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(BASELINES)}") from None
    return factory(path_set, **kw)
