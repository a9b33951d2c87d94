"""The fluid model: link loads and maximum link utilization (MLU) of a decision on a traffic matrix.

Traffic matrices are in Mbit/s, indexed ``tm[s, d]`` by node position in ``path_set.nodes``. Demand on
the diagonal and between nodes that are not an OD pair of the path set is ignored. Every function takes
one item or a batch: ``weights`` [P] or [B, P] (or a :class:`~sim.decision.Decision`) and ``tm``
[N, N] or [B, N, N]; a single item broadcasts against a batch. Weights are used as given (they are
expected normalized per OD pair; :class:`Decision` guarantees it).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from sim.decision import Decision
from sim.paths import PathSet


def _matrices(path_set: PathSet, tm: ArrayLike) -> np.ndarray:
    tm = np.asarray(tm, dtype=np.float64)
    n = path_set.n_nodes
    if tm.ndim not in (2, 3) or tm.shape[-2:] != (n, n):
        raise ValueError(f"traffic matrix has shape {tm.shape}, expected ({n}, {n}) or (B, {n}, {n})")
    return tm


def od_demands(path_set: PathSet, tm: ArrayLike) -> np.ndarray:
    """Demand of every OD pair, [n_ods] or [B, n_ods] (Mbit/s)."""
    tm = _matrices(path_set, tm)
    n = path_set.n_nodes
    return tm.reshape(*tm.shape[:-2], n * n)[..., path_set.od_flat]


def path_flows(path_set: PathSet, weights: ArrayLike | Decision, tm: ArrayLike) -> np.ndarray:
    """Traffic on every path, [P] or [B, P] (Mbit/s): the OD demand times the path's weight."""
    w = weights.weights if isinstance(weights, Decision) else np.asarray(weights, dtype=np.float64)
    if w.ndim not in (1, 2) or w.shape[-1] != path_set.n_paths:
        raise ValueError(f"weights have shape {w.shape}, expected ({path_set.n_paths},) or (B, P)")
    tm = _matrices(path_set, tm)
    if w.ndim == 2 and tm.ndim == 3 and len(w) != len(tm):
        raise ValueError(f"batch sizes differ: {len(w)} weight vectors, {len(tm)} matrices")
    n = path_set.n_nodes
    return w * tm.reshape(*tm.shape[:-2], n * n)[..., path_set.path_flat]


def link_loads(path_set: PathSet, weights: ArrayLike | Decision, tm: ArrayLike) -> np.ndarray:
    """Load of every link, [L] or [B, L] (Mbit/s), in the order of ``path_set.edges``."""
    x = path_flows(path_set, weights, tm)
    # One dense-by-sparse product for the whole batch: (B x P) @ (P x L).
    return np.asarray(x @ path_set.incidence)


def utilization(path_set: PathSet, loads: ArrayLike) -> np.ndarray:
    """Load / capacity of every link, [L] or [B, L]."""
    return np.asarray(loads, dtype=np.float64) / path_set.capacities


def mlu(path_set: PathSet, weights: ArrayLike | Decision, tm: ArrayLike) -> float | np.ndarray:
    """Maximum link utilization: a float, or [B] for a batch."""
    u = utilization(path_set, link_loads(path_set, weights, tm)).max(axis=-1)
    return float(u) if u.ndim == 0 else u
