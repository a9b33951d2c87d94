"""Decisions: how each OD pair's demand is split over its paths.

A :class:`Decision` is one weight vector over all path ids of a :class:`~sim.paths.PathSet`,
normalized per OD pair. It is what every policy returns, what the simulator scores and what the
controller writes into SELECT-group bucket weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from sim.paths import Link, PathSet

_MAX_LISTED = 5  # problems listed in full before "... and N more"


def _describe_od(path_set: PathSet, od: int) -> str:
    s, d = path_set.od_pairs[od]
    return f"OD {s}->{d} (od {od})"


def _describe_path(path_set: PathSet, p: int) -> str:
    return f"path {p} of {_describe_od(path_set, int(path_set.path_od[p]))}"


def _listed(items: Sequence[int] | np.ndarray, describe: Callable[[int], str]) -> list[str]:
    out = [describe(int(i)) for i in items[:_MAX_LISTED]]
    if len(items) > _MAX_LISTED:
        out.append(f"... and {len(items) - _MAX_LISTED} more")
    return out


def weight_problems(
    path_set: PathSet, weights: ArrayLike, down_links: Iterable[Link] = ()
) -> list[str]:
    """What is wrong with a raw weight vector ``weights`` [P] for ``path_set``; empty when usable.

    Usable means: the right shape, finite, non-negative, a positive sum for every OD pair (it is then
    normalized), and zero weight on every path that crosses one of ``down_links``. This is the health
    check the controller runs on an agent's output.
    """
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as e:
        return [f"weights are not numeric: {e}"]
    if w.shape != (path_set.n_paths,):
        return [f"weights have shape {w.shape}, expected ({path_set.n_paths},)"]
    ps = path_set
    problems = _listed(
        np.flatnonzero(~np.isfinite(w)),
        lambda p: f"{_describe_path(ps, p)} has non-finite weight {w[p]}",
    )
    problems += _listed(
        np.flatnonzero(w < 0), lambda p: f"{_describe_path(ps, p)} has negative weight {w[p]:g}"
    )
    if problems:
        return problems  # per-OD sums are meaningless with nan, inf or negative entries
    sums = np.add.reduceat(w, ps.od_ptr[:-1]) if ps.n_paths else np.zeros(0)
    problems += _listed(
        np.flatnonzero(~(sums > 0)),
        lambda od: f"{_describe_od(ps, od)} has no positive weight (sum {sums[od]:g})",
    )
    down = set(down_links)
    if down:

        def dead(p: int) -> str:
            u, v = next(e for e in ps.links_of(p) if e in down)
            return f"{_describe_path(ps, p)} has weight {w[p]:g} but uses down link {u}->{v}"

        problems += _listed(np.flatnonzero(~ps.live_paths(down) & (w > 0)), dead)
    return problems


def normalize_weights(path_set: PathSet, weights: ArrayLike) -> np.ndarray:
    """Weights [P] or [B, P] divided by their per-OD sums (no validation: zero sums give nan).

    The batch form is for the simulator, which scores many raw actions at once.
    """
    w = np.asarray(weights, dtype=np.float64)
    sums = np.add.reduceat(w, path_set.od_ptr[:-1], axis=-1)
    return w / sums[..., path_set.path_od]


@dataclass(frozen=True, eq=False)
class Decision:
    """Weights over every path of ``path_set``, [P], normalized so each OD pair sums to 1.

    The constructor normalizes and raises ``ValueError`` (listing the offending OD pairs or paths)
    when the weights are not finite and non-negative with a positive sum per OD pair. Down links are
    not the constructor's business: check them with :meth:`validate`, remove them with :meth:`masked`.
    """

    path_set: PathSet
    weights: np.ndarray

    def __post_init__(self) -> None:
        problems = weight_problems(self.path_set, self.weights)
        if problems:
            raise ValueError("invalid decision: " + "; ".join(problems))
        w = normalize_weights(self.path_set, self.weights)
        w.setflags(write=False)
        object.__setattr__(self, "weights", w)

    # ------------------------------------------------------------------ checks
    def validate(self, down_links: Iterable[Link] = ()) -> list[str]:
        """Problems of this decision given the links that are down (empty list: fine)."""
        return weight_problems(self.path_set, self.weights, down_links)

    def masked(self, down_links: Iterable[Link]) -> Decision:
        """The same decision with the weight of dead paths moved onto live ones of the same OD pair.

        Live paths keep their relative weights; an OD pair whose weight was all on dead paths is
        split equally over its live paths. Raises ``ValueError`` when an OD pair has no live path.
        """
        ps = self.path_set
        live = ps.live_paths(down_links)
        if live.all():
            return self
        n_live = np.add.reduceat(live.astype(np.int64), ps.od_ptr[:-1])
        if (n_live == 0).any():
            ods = np.flatnonzero(n_live == 0)
            names = ", ".join(_describe_od(ps, od) for od in ods[:_MAX_LISTED])
            more = f" and {len(ods) - _MAX_LISTED} more" if len(ods) > _MAX_LISTED else ""
            raise ValueError(f"no live path for {names}{more}")
        w = np.where(live, self.weights, 0.0)
        kept = np.add.reduceat(w, ps.od_ptr[:-1])
        orphan = (kept <= 0)[ps.path_od]
        w = np.where(orphan & live, 1.0, w)
        return Decision(ps, w)

    def od_weights(self, od: int | Link) -> np.ndarray:
        """Weights of one OD pair's paths, in the order of ``path_set.paths_of(od)``."""
        r = self.path_set.paths_of(od)
        return self.weights[r.start : r.stop]

    def __repr__(self) -> str:
        return f"Decision({self.path_set!r}, active_paths={int((self.weights > 0).sum())})"

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_od_weights(
        cls, path_set: PathSet, od_weights: Mapping[Link, Sequence[float]]
    ) -> Decision:
        """Build from ``{(s, d): weights over path_set.paths_of((s, d))}``; every OD pair required."""
        w = np.zeros(path_set.n_paths)
        missing = [od for od in path_set.od_pairs if od not in od_weights]
        if missing:
            more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
            names = ", ".join(f"{s}->{d}" for s, d in missing[:_MAX_LISTED])
            raise ValueError(f"no weights for OD pairs {names}{more}")
        for (s, d), ws in od_weights.items():
            r = path_set.paths_of((s, d))
            values = np.asarray(ws, dtype=np.float64)
            if values.shape != (len(r),):
                raise ValueError(f"OD {s}->{d} has {len(r)} paths, got weights of shape "
                                 f"{values.shape}")
            w[r.start : r.stop] = values
        return cls(path_set, w)

    @classmethod
    def split(cls, path_set: PathSet, path_ids: Iterable[int]) -> Decision:
        """Equal split, per OD pair, over the given path ids (every OD pair needs at least one)."""
        mask = np.zeros(path_set.n_paths)
        mask[np.fromiter(path_ids, dtype=np.int64)] = 1.0
        return cls(path_set, mask)

    @classmethod
    def single_path(cls, path_set: PathSet, path_ids: Iterable[int]) -> Decision:
        """All of each OD pair's demand on one path: exactly one path id per OD pair."""
        ids = np.fromiter(path_ids, dtype=np.int64)
        counts = np.bincount(path_set.path_od[ids], minlength=path_set.n_ods)
        if (counts != 1).any():
            od = int(np.flatnonzero(counts != 1)[0])
            raise ValueError(
                f"single_path needs exactly one path per OD pair; {_describe_od(path_set, od)} "
                f"has {counts[od]}"
            )
        return cls.split(path_set, ids)

    @classmethod
    def uniform(
        cls, path_set: PathSet, candidates_only: bool = True, down_links: Iterable[Link] = ()
    ) -> Decision:
        """Equal split over each OD pair's live (candidate) paths."""
        w = path_set.live_paths(down_links).astype(np.float64)
        if candidates_only:
            w *= path_set.candidate
        return cls(path_set, w)
