"""Candidate paths from near-optimal multi-commodity flows on representative matrices.

The ``te`` path method of :class:`sim.paths.PathSet` adds to the shortest paths the paths that a
congestion-minimizing routing of a few *representative* traffic matrices uses, in the spirit of
SMORE (Kumar et al., NSDI 2018: choose paths once from a routing that is good for many matrices,
re-split traffic over them at run time). The representative matrices are a pure function of the
graph: the gravity matrix of the nodes' capacities, the uniform matrix, and a few seeded synthetic
gravity matrices (:func:`topologies.traffic.synthetic_traffic`, fixed seeds). Never measured traffic.

The routing is the multiplicative-weights method for minimum congestion (Garg and Könemann 1998,
Fleischer 2000, here with a fixed number of rounds): every round routes each OD pair's demand on
its shortest path under link lengths ``exp(beta * u_e / max u) / c_e``, where ``u`` is the average
utilization of the rounds so far; the average of the rounds approaches the minimum-MLU routing.
Every round is one compiled all-sources Dijkstra (``scipy.sparse.csgraph``) and numpy arithmetic,
so the whole thing costs a few seconds on a 200-node network. The paths used, weighted by how
many rounds used them, are the candidates: they are the columns a column-generation LP would
price in, found without solving an LP (and without depending on an LP solver's choice of vertex).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

log = logging.getLogger(__name__)

#: Rounds of the multiplicative-weights routing per representative matrix.
ROUNDS = 32
#: Steepness of the congestion-aware lengths (a link at the current maximum utilization is e^BETA
#: times longer than its inverse-capacity length).
BETA = 6.0
#: Seeds of the synthetic representative matrices (evaluations must use other seeds).
SEEDS = (9001, 9002, 9003, 9004)
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)


def representative_matrices(n: int, tails: np.ndarray, heads: np.ndarray, caps: np.ndarray,
                            hosts: Sequence[int], synthetic: Sequence[np.ndarray]
                            ) -> list[np.ndarray]:
    """Gravity-by-capacity, uniform, then the given synthetic matrices, host pairs only."""
    out_cap = np.bincount(tails, weights=caps, minlength=n)
    mask = np.zeros((n, n))
    h = np.asarray(hosts, np.int64)
    mask[np.ix_(h, h)] = 1.0
    np.fill_diagonal(mask, 0.0)
    gravity = np.outer(out_cap, out_cap) * mask
    return [gravity, mask.copy(), *(np.asarray(m, np.float64) * mask for m in synthetic)]


def flow_paths(n: int, tails: np.ndarray, heads: np.ndarray, caps: np.ndarray,
               hosts: Sequence[int], matrices: Sequence[np.ndarray], keep: int,
               rounds: int = ROUNDS, beta: float = BETA
               ) -> dict[tuple[int, int], list[tuple[float, tuple[int, ...]]]]:
    """Per host pair (s, d): ``(share, path)`` of the ``keep`` paths the routings used most.

    ``share`` sums, over the matrices, the fraction of rounds that routed (s, d) on that path;
    largest first, equal shares in the (deterministic, arbitrary) order of a hash of the path.
    """
    host_index = np.asarray(hosts, np.int64)
    n_hosts = len(host_index)
    link_id = np.full((n, n), -1, np.int64)
    link_id[tails, heads] = np.arange(len(tails))
    base = float(caps.max()) / caps
    preds: list[np.ndarray] = []
    found = []  # per matrix: (pair, hash, share, global round of first use)
    for demand in matrices:
        if not demand.any():
            continue
        round_preds = _mwu_rounds(n, tails, heads, caps, base, link_id, host_index, demand, rounds,
                                  beta)
        found.append(_count_paths(round_preds, host_index, demand, len(preds)))
        preds.extend(round_preds)
    if not found:
        return {}
    pair, hsh, share, first = (np.concatenate(a) for a in zip(*found))
    # merge the matrices: one entry per (pair, path), shares summed, earliest round kept
    order = np.lexsort((first, hsh, pair))
    pair, hsh, share, first = pair[order], hsh[order], share[order], first[order]
    start = np.r_[True, (pair[1:] != pair[:-1]) | (hsh[1:] != hsh[:-1])]
    group = np.cumsum(start) - 1
    share = np.bincount(group, weights=share)
    pair, hsh, first = pair[start], hsh[start], first[start]
    # the `keep` largest shares per pair
    order = np.lexsort((hsh, -np.round(share, 9), pair))
    pair, share, first = pair[order], share[order], first[order]
    begins = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    rank = np.arange(len(pair)) - np.repeat(begins, np.diff(np.r_[begins, len(pair)]))
    top = rank < keep
    pair, share, first = pair[top], share[top], first[top]
    paths = _walk_all(np.stack(preds), pair // n_hosts, host_index[pair // n_hosts],
                      host_index[pair % n_hosts], first)
    out: dict[tuple[int, int], list[tuple[float, tuple[int, ...]]]] = {}
    for p, sh, path in zip(pair.tolist(), share.tolist(), paths):
        out.setdefault((path[0], path[-1]), []).append((sh, path))
    return out


def _mwu_rounds(n, tails, heads, caps, base, link_id, hosts, demand, rounds, beta
                ) -> list[np.ndarray]:
    """Predecessor matrices [hosts, n] of every round."""
    cumulative = np.zeros(len(tails))
    preds = []
    for t in range(rounds):
        util = cumulative / caps
        top = util.max()
        length = base * np.exp(beta * util / top) if top > 0 else base.copy()
        graph = sp.csr_matrix((length, (tails, heads)), shape=(n, n))
        dist, pred = dijkstra(graph, directed=True, indices=hosts, return_predecessors=True)
        preds.append(pred.astype(np.int32))
        cumulative += _tree_loads(dist, pred, hosts, demand, link_id, len(tails))
    return preds


def _tree_loads(dist: np.ndarray, pred: np.ndarray, hosts: np.ndarray, demand: np.ndarray,
                link_id: np.ndarray, n_links: int) -> np.ndarray:
    """Link loads of routing every source's demand down its shortest-path tree."""
    rows = np.arange(len(hosts))
    acc = demand[hosts].astype(np.float64)  # acc[i, v]: demand from hosts[i] through v
    order = np.argsort(np.where(np.isfinite(dist), -dist, 1.0), axis=1, kind="stable")
    loads = np.zeros(n_links)
    for j in range(dist.shape[1]):
        v = order[:, j]
        p = pred[rows, v]
        ok = p >= 0
        r, v, p = rows[ok], v[ok], p[ok]
        flow = acc[r, v]
        acc[r, p] += flow  # one entry per source row: no repeated index
        loads += np.bincount(link_id[p, v], weights=flow, minlength=n_links)
    return loads


def _count_paths(preds: list[np.ndarray], hosts: np.ndarray, demand: np.ndarray,
                 offset: int) -> tuple[np.ndarray, ...]:
    """Per (host pair, path used): the pair (``i_s * hosts + i_d``), the path's hash, the share of
    rounds that used it and the first such round (numbered from ``offset``)."""
    rounds = len(preds)
    src_i, dst_i = np.nonzero(demand[np.ix_(hosts, hosts)] > 0)
    pair_ids = src_i * len(hosts) + dst_i
    hashes = np.stack([_path_hashes(pred, src_i, hosts[src_i], hosts[dst_i]) for pred in preds])
    pair = np.tile(pair_ids, rounds)
    when = np.repeat(np.arange(rounds), len(pair_ids))
    h = hashes.ravel()
    order = np.lexsort((when, h, pair))
    pair, h, when = pair[order], h[order], when[order]
    start = np.flatnonzero(np.r_[True, (pair[1:] != pair[:-1]) | (h[1:] != h[:-1])])
    counts = np.diff(np.r_[start, len(pair)])
    return pair[start], h[start], counts / rounds, when[start] + offset


def _path_hashes(pred: np.ndarray, src_i: np.ndarray, src: np.ndarray,
                 dst: np.ndarray) -> np.ndarray:
    """A 64-bit hash of the node sequence of each (src, dst) path in one round's trees."""
    cur = dst.astype(np.int64)
    h = cur.astype(np.uint64)
    active = cur != src
    with np.errstate(over="ignore"):
        while active.any():  # whole-array steps: cheaper than indexing the active ones
            nxt = np.where(active, pred[src_i, cur], cur).astype(np.int64)
            h = np.where(active, h * _HASH_MUL + nxt.astype(np.uint64) + np.uint64(1), h)
            cur = nxt
            active = cur != src
    return h


def _walk_all(preds: np.ndarray, src_i: np.ndarray, src: np.ndarray, dst: np.ndarray,
              rounds: np.ndarray) -> list[tuple[int, ...]]:
    """The node sequences of the (src, dst) paths of the given rounds' trees."""
    cur = dst.astype(np.int64)
    steps = [cur.copy()]
    active = cur != src
    while active.any():
        cur = np.where(active, preds[rounds, src_i, cur], cur).astype(np.int64)
        steps.append(cur)
        active = cur != src
    walked = np.stack(steps, axis=1)  # dst first, then the src repeated once reached
    lengths = np.argmax(walked == src[:, None], axis=1) + 1
    return [tuple(reversed(row[:length])) for row, length in zip(walked.tolist(), lengths.tolist())]


def rounds_note() -> str:
    """One line describing the recipe (for logs and benchmarks)."""
    return (f"{len(SEEDS) + 2} representative matrices x {ROUNDS} rounds, beta={BETA}, "
            f"seeds {SEEDS}")

