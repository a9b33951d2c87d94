"""The oracle: minimum achievable MLU for a traffic matrix (the denominator of every quality number).

Two linear programs, solved with HiGHS through ``scipy.optimize.linprog(method="highs")``:

- :func:`optimal_mlu`: over **all** paths, a multi-commodity flow LP aggregated by source (one
  commodity per source node with demand): variables ``flow[s, e] >= 0`` and ``U``; conservation at
  every (source, node); ``sum_s flow[s, e] <= U * capacity_e``; minimize ``U``.
- :func:`path_optimal`: over the paths of a :class:`~sim.paths.PathSet` (by default its k
  candidates): variables ``x_p >= 0`` (traffic on path p) and ``U``; ``sum_{p in od} x_p = demand_od``;
  ``sum_p x_p [p uses e] <= U * capacity_e``; minimize ``U``. Also returns the optimal split.

Demands and capacities are divided by the largest capacity before solving (``U`` is unchanged by a
common scale) to keep the LP well conditioned. :func:`optimal_series` solves a whole series and
caches the results on disk, because the environment and the evaluation need them again and again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import networkx as nx
import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike
from scipy.optimize import linprog

from sim.decision import Decision
from sim.loads import od_demands
from sim.paths import Link, PathSet, graph_links

log = logging.getLogger(__name__)

#: Part of every cache key: bump when a formulation changes so old optima are not reused.
OPTIMA_VERSION = 1
_HIGHS_OPTIONS = {"primal_feasibility_tolerance": 1e-9, "dual_feasibility_tolerance": 1e-9}


def default_cache_dir() -> Path:
    """``$RYUTE_OPTIMA_CACHE`` or ``~/.cache/ryute/optima``."""
    return Path(os.environ.get("RYUTE_OPTIMA_CACHE", "~/.cache/ryute/optima")).expanduser()


def _demand(tm: ArrayLike, n: int) -> np.ndarray:
    d = np.array(tm, dtype=np.float64)
    if d.shape != (n, n):
        raise ValueError(f"traffic matrix has shape {d.shape}, expected ({n}, {n})")
    if not np.all(np.isfinite(d)) or (d < 0).any():
        raise ValueError("traffic matrix must be finite and non-negative")
    np.fill_diagonal(d, 0.0)
    return d


def _solve(c, a_ub, b_ub, a_eq, b_eq) -> np.ndarray:
    res = linprog(
        c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs",
        options=_HIGHS_OPTIONS,
    )
    if res.status != 0:
        raise RuntimeError(f"LP not solved: {res.message}")
    return res.x


def optimal_mlu(graph: nx.DiGraph, tm: ArrayLike, down_links: Iterable[Link] = ()) -> float:
    """Minimum MLU over all routings of ``tm`` (Mbit/s, ``tm[s, d]`` in graph node order).

    Links in ``down_links`` carry nothing. Returns 0.0 for an all-zero matrix; raises ``ValueError``
    when some demand has no path (e.g. after link failures).
    """
    nodes, edges, caps = graph_links(graph)
    n = len(nodes)
    dem = _demand(tm, n)
    down = set(down_links)
    unknown = down - set(edges)
    if unknown:
        raise ValueError(f"down links not in the graph: {sorted(map(str, unknown))}")
    live = [i for i, e in enumerate(edges) if e not in down]
    sources = np.flatnonzero(dem.sum(axis=1) > 0)
    if len(sources) == 0:
        return 0.0
    _check_routable(nodes, [edges[i] for i in live], dem, sources)

    scale = float(caps.max())
    pos = {v: i for i, v in enumerate(nodes)}
    n_l, n_s = len(live), len(sources)
    tail = [pos[edges[i][0]] for i in live]
    head = [pos[edges[i][1]] for i in live]
    # node x link incidence: +1 where the link leaves the node, -1 where it enters
    node_link = sp.csr_matrix(
        (np.r_[np.ones(n_l), -np.ones(n_l)], (np.r_[tail, head], np.r_[range(n_l), range(n_l)])),
        shape=(n, n_l),
    )
    # variables: flow[s, e] at s * n_l + e (s over sources with demand), then U
    a_eq = sp.hstack([sp.kron(sp.identity(n_s), node_link), sp.csr_matrix((n_s * n, 1))])
    b_eq = -dem[sources] / scale  # the destinations absorb their demand ...
    b_eq[np.arange(n_s), sources] = dem[sources].sum(axis=1) / scale  # ... the source emits all
    a_ub = sp.hstack([sp.kron(np.ones((1, n_s)), sp.identity(n_l)), -caps[live, None] / scale])
    c = np.zeros(n_s * n_l + 1)
    c[-1] = 1.0
    x = _solve(c, a_ub.tocsr(), np.zeros(n_l), a_eq.tocsr(), b_eq.reshape(-1))
    return float(x[-1])


def _check_routable(nodes: list, live_edges: list[Link], dem: np.ndarray, sources) -> None:
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(live_edges)
    for s in sources:
        reach = nx.descendants(g, nodes[s])
        for d in np.flatnonzero(dem[s] > 0):
            if nodes[d] not in reach:
                raise ValueError(f"demand {nodes[s]!r} -> {nodes[d]!r} has no live path")


def path_optimal(
    path_set: PathSet,
    tm: ArrayLike,
    candidates_only: bool = True,
    down_links: Iterable[Link] = (),
    fill: Decision | None = None,
) -> tuple[float, Decision]:
    """Minimum MLU of ``tm`` over the paths of ``path_set``, and a split that achieves it.

    ``candidates_only`` restricts to the k candidate paths (else every path of the set); paths
    through ``down_links`` are excluded. OD pairs without demand get ``fill``'s weights (masked to
    live paths) or, by default, all on their first usable path; so do OD pairs whose demand is
    too small for the solver to route (below 1e-9 of the largest capacity). Raises
    ``ValueError`` when an OD pair with demand has no usable path. One of the LP's many optimal
    splits is returned.
    """
    ps = path_set
    dem = od_demands(ps, _demand(tm, ps.n_nodes))
    down = list(down_links)
    live = ps.live_paths(down)
    usable = live & ps.candidate if candidates_only else live
    active = dem > 0
    n_usable = np.add.reduceat(usable.astype(np.int64), ps.od_ptr[:-1])
    stuck = np.flatnonzero(active & (n_usable == 0))
    if len(stuck):
        names = ", ".join(f"{ps.od_pairs[i][0]}->{ps.od_pairs[i][1]}" for i in stuck[:5])
        raise ValueError(f"OD pairs with demand but no usable path: {names}")

    weights = np.zeros(ps.n_paths)
    u = 0.0
    var = np.flatnonzero(usable & active[ps.path_od])
    if len(var):
        scale = float(ps.capacities.max())
        act = np.flatnonzero(active)
        row = np.searchsorted(act, ps.path_od[var])
        n_v = len(var)
        a_eq = sp.csr_matrix((np.ones(n_v), (row, np.arange(n_v))), shape=(len(act), n_v + 1))
        a_ub = sp.hstack([ps.incidence[var].T, -ps.capacities[:, None] / scale]).tocsr()
        c = np.zeros(n_v + 1)
        c[-1] = 1.0
        x = _solve(c, a_ub, np.zeros(ps.n_links), a_eq, dem[act] / scale)
        u = float(x[-1])
        weights[var] = np.maximum(x[:-1], 0.0)  # solver noise can leave -1e-12

    # An OD pair whose demand is below the solver's tolerance (1e-9 of the largest capacity)
    # can come back with no flow on any path: it is routed like an idle one.
    routed = np.add.reduceat(weights, ps.od_ptr[:-1]) > 0
    unrouted = ~routed
    idle = unrouted[ps.path_od]
    if fill is not None:
        weights[idle] = fill.masked(down).weights[idle]
    else:
        for od in np.flatnonzero(unrouted):
            r = ps.paths_of(int(od))
            # first usable path, else first live path, else the first (validate() will complain)
            ok = np.flatnonzero(usable[r.start : r.stop]) if n_usable[od] else np.flatnonzero(
                live[r.start : r.stop]
            )
            weights[r.start + (ok[0] if len(ok) else 0)] = 1.0
    return u, Decision(ps, weights)


# ---------------------------------------------------------------------- series and cache
def optimal_series(
    target: nx.DiGraph | PathSet,
    tms: ArrayLike,
    *,
    candidates_only: bool = True,
    down_links: Iterable[Link] = (),
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Optimal MLU of every matrix of ``tms`` [T, N, N]; NaN for all-zero matrices (skipped).

    ``target`` is a graph (optimum over all paths, :func:`optimal_mlu`) or a path set (optimum over
    its candidate paths, or all its paths with ``candidates_only=False``, :func:`path_optimal`).
    Results are cached under ``cache_dir`` (default :func:`default_cache_dir`), one file per
    topology/formulation, keyed by the sha256 of each matrix's float64 bytes. ``progress(done,
    total)`` is called after each matrix that had to be solved.
    """
    tms = np.asarray(tms, dtype=np.float64)
    if tms.ndim != 3:
        raise ValueError(f"expected a series [T, N, N], got shape {tms.shape}")
    down = sorted(down_links, key=str)
    if isinstance(target, PathSet):
        topo = {"kind": "paths", "paths": target.fingerprint(), "candidates_only": candidates_only}

        def solve(m: np.ndarray) -> float:
            return path_optimal(target, m, candidates_only, down)[0]
    else:
        nodes, edges, caps = graph_links(target)
        topo = {
            "kind": "mcf",
            "nodes": [str(v) for v in nodes],
            "links": [[str(a), str(b), float(c)] for (a, b), c in zip(edges, caps)],
        }

        def solve(m: np.ndarray) -> float:
            return optimal_mlu(target, m, down)
    topo |= {"version": OPTIMA_VERSION, "down": [[str(a), str(b)] for a, b in down]}
    topo_key = hashlib.sha256(json.dumps(topo, sort_keys=True).encode()).hexdigest()

    keys = [hashlib.sha256(np.ascontiguousarray(m).tobytes()).hexdigest() for m in tms]
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = path / f"{topo_key[:32]}.npz"
    known = _read_cache(path) if cache else {}
    out = np.full(len(tms), np.nan)
    todo = [t for t in range(len(tms)) if tms[t].any()]
    missing = [t for t in todo if keys[t] not in known]
    t0 = time.perf_counter()
    new: dict[str, float] = {}
    for i, t in enumerate(missing):
        new[keys[t]] = solve(tms[t])
        if progress is not None:
            progress(i + 1, len(missing))
    if missing:
        log.info("solved %d optima in %.1fs (%d from cache)", len(missing),
                 time.perf_counter() - t0, len(todo) - len(missing))
    if cache and new:
        _write_cache(path, new)
    for t in todo:
        out[t] = new[keys[t]] if keys[t] in new else known[keys[t]]
    return out


def _read_cache(path: Path) -> dict[str, float]:
    try:
        with np.load(path) as f:
            return dict(zip(f["keys"].tolist(), f["values"].tolist()))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        # a corrupt cache costs a recomputation, never a failure
        log.warning("ignoring unreadable optima cache %s: %s", path, e)
        return {}


def _write_cache(path: Path, new: dict[str, float]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = _read_cache(path) | new  # others may have written meanwhile
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, keys=np.array(list(merged), dtype="U64"),
                     values=np.array(list(merged.values()), dtype=np.float64))
        os.replace(tmp, path)
    except OSError as e:
        log.warning("cannot write optima cache %s: %s", path, e)
