"""Candidate paths: the one path set every policy, the simulator and the controller share.

A :class:`PathSet` lists, for every ordered pair of host-bearing nodes (an OD pair), a few paths with
stable integer ids ``0..P-1``. The controller turns each id into an MPLS label and each OD pair into a
SELECT group, so every decision (agent, fallback, baseline) is only a weight vector over these ids.

Deterministic by construction: ids are a pure function of (node order, link set, capacities, k, method).
The graph is rebuilt canonically (nodes in the given order, links sorted by node position) and every
ranking is by ``(cost, sequence of node positions)``: among equal-cost paths the lexicographically
smallest sequence of node positions wins, whatever order networkx enumerates them in.

Per OD pair the set is the deduplicated union, in this order, of

1. the k *candidates* of the chosen method (``candidate[p]`` is True), which the agent and the
   path-restricted optimum use;
2. every equal-cost shortest path under inverse-capacity weights (``invcap``, the OSPF default and the
   controller's fallback, with or without ECMP ties);
3. every equal-cost min-hop path (``sp`` and ``ecmp``).

Equal-cost sets are capped at :data:`MAX_TIES` paths per OD pair (the cut then follows networkx's
enumeration order, still deterministic).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

from sim import flowpaths
from sim.pathsearch import PathSearch, distances_to, enumerate_within, slack_adjacency
from topologies.traffic import synthetic_traffic

log = logging.getLogger(__name__)

Node = Hashable
Link = tuple[Node, Node]
Path = tuple[Node, ...]

METHODS = ("hops", "invcap", "disjoint", "te")
DEFAULT_K, DEFAULT_METHOD = 4, "hops"
"""Candidate paths when nothing (no option, no model) names others."""
#: The ``te`` method starts from this many shortest paths by hops (those of ``hops`` with k = 4).
TE_SHORTEST = 4
METRICS = ("hops", "invcap")
#: Path costs are compared after rounding to this many decimals (inverse-capacity costs are floats).
COST_DECIMALS = 9
#: Upper bound on the equal-cost paths collected per OD pair.
MAX_TIES = 64
_FORMAT = "ryute-pathset-1"


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class PathSet:
    """Immutable set of paths over a directed graph, grouped by OD pair.

    Primary data (what the fingerprint covers): ``nodes``, ``edges`` (links, directed), ``capacities``
    (Mbit/s per link), ``paths`` (node tuples; the paths of one OD pair are contiguous, OD pairs in
    order of first appearance), ``candidate`` (bool per path), ``k`` and ``method``. Everything else is
    derived. Build one with :meth:`from_graph`; the constructor is for paths given explicitly
    (e.g. read back from a model file).
    """

    nodes: tuple[Node, ...]
    edges: tuple[Link, ...]
    capacities: np.ndarray
    paths: tuple[Path, ...]
    candidate: np.ndarray
    k: int
    method: str
    # derived in __post_init__
    od_pairs: tuple[Link, ...] = field(init=False)
    path_od: np.ndarray = field(init=False, repr=False)
    od_ptr: np.ndarray = field(init=False, repr=False)
    incidence: sp.csr_matrix = field(init=False, repr=False)

    def __post_init__(self) -> None:
        def set_(name: str, value: object) -> None:  # the dataclass is frozen
            object.__setattr__(self, name, value)

        set_("nodes", tuple(self.nodes))
        set_("edges", tuple((u, v) for u, v in self.edges))
        set_("paths", tuple(tuple(p) for p in self.paths))
        caps = _readonly(np.array(self.capacities, dtype=np.float64).reshape(-1))
        cand = _readonly(np.array(self.candidate, dtype=bool).reshape(-1))
        set_("capacities", caps)
        set_("candidate", cand)
        if len(caps) != len(self.edges):
            raise ValueError(f"{len(self.edges)} links but {len(caps)} capacities")
        if not np.all(np.isfinite(caps) & (caps > 0)):
            raise ValueError("every link capacity must be finite and > 0")
        if len(cand) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(cand)} candidate flags")
        if self.method not in METHODS:
            raise ValueError(f"unknown path method {self.method!r}; choose one of {METHODS}")
        if len(set(self.nodes)) != len(self.nodes) or len(set(self.edges)) != len(self.edges):
            raise ValueError("duplicate nodes or links")

        ods: list[Link] = []
        od_of_path = np.empty(len(self.paths), dtype=np.int64)
        node_pos = {n: i for i, n in enumerate(self.nodes)}
        flat: list[int] = []
        for p, path in enumerate(self.paths):
            if len(path) < 2 or path[0] == path[-1] or len(set(path)) != len(path):
                raise ValueError(f"path {p} {path} is not a simple path between two nodes")
            od = (path[0], path[-1])
            if not ods or ods[-1] != od:
                ods.append(od)
            od_of_path[p] = len(ods) - 1
            flat.extend(node_pos.get(v, -1) for v in path)
        rows, cols = self._hop_links(node_pos, flat)
        if len(set(ods)) != len(ods):
            raise ValueError("the paths of each OD pair must be contiguous")
        if len(set(self.paths)) != len(self.paths):
            raise ValueError("duplicate paths")
        n_paths = np.bincount(od_of_path, minlength=len(ods)) if len(ods) else np.zeros(0, np.int64)
        inc = sp.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(len(self.paths), len(self.edges))
        )
        for a in (inc.data, inc.indices, inc.indptr):
            a.setflags(write=False)
        set_("od_pairs", tuple(ods))
        set_("path_od", _readonly(od_of_path))
        set_("od_ptr", _readonly(np.concatenate([[0], np.cumsum(n_paths)]).astype(np.int64)))
        set_("incidence", inc)

    def _hop_links(self, node_pos: dict[Node, int], flat: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(path, link) of every hop of the paths, whose node positions are ``flat`` end to end.

        Vectorized (link keys ``tail * N + head`` looked up in sorted order): the per-hop dict
        lookups took seconds on the 289,000 paths of a 200-node network.
        """
        n = len(self.nodes)
        lengths = np.fromiter((len(p) for p in self.paths), np.int64, len(self.paths))
        pos = np.asarray(flat, np.int64)
        keys = np.array([node_pos.get(u, -1) * n + node_pos.get(v, -1) for u, v in self.edges],
                        np.int64)
        order = np.argsort(keys, kind="stable")
        hop_ok = np.ones(len(pos), bool)
        hop_ok[np.cumsum(lengths) - 1] = False  # the last node of a path starts no hop
        tail, head = pos[:-1][hop_ok[:-1]], pos[1:][hop_ok[:-1]]
        want = tail * n + head
        at = np.minimum(np.searchsorted(keys[order], want), max(len(keys) - 1, 0))
        found = (tail >= 0) & (head >= 0) & (keys[order][at] == want) if len(keys) else \
            np.zeros(len(want), bool)
        rows = np.repeat(np.arange(len(self.paths)), lengths - 1)
        if not found.all():
            bad = int(np.flatnonzero(~found)[0])
            p = int(rows[bad])
            i = bad - int(np.sum(lengths[:p] - 1))
            path = self.paths[p]
            raise ValueError(f"path {p} {path} uses {(path[i], path[i + 1])}, which is not a link")
        return rows, order[at]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_graph(cls, graph: nx.DiGraph, k: int = DEFAULT_K, method: str = DEFAULT_METHOD
                   ) -> PathSet:
        """Build the path set of ``graph`` (directed edges with ``capacity_mbps`` > 0).

        OD pairs: every ordered pair of distinct nodes whose ``hosts`` attribute is true (default),
        in node order. Candidates per OD pair (at most ``k``):

        - ``"hops"``: the k shortest simple paths by hop count (Yen);
        - ``"invcap"``: the k shortest simple paths under weights ``max_capacity / capacity``;
        - ``"disjoint"``: greedy edge-disjoint min-hop paths (take the shortest, remove its links,
          repeat); may find fewer than the maximum number of disjoint paths on trap topologies.

        Ties are broken by the sequence of node positions (lexicographically smallest first).
        Raises ``ValueError`` when an OD pair has no path.
        """
        if method not in METHODS:
            raise ValueError(f"unknown path method {method!r}; choose one of {METHODS}")
        if int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        t0 = time.perf_counter()
        nodes, edges, caps = graph_links(graph)
        ranker = _Ranker(nodes, edges, caps)
        hosts = [i for i, n in enumerate(nodes) if graph.nodes[n].get("hosts", True)]
        flows = _te_flow_paths(graph, ranker, caps, hosts, k) if method == "te" else {}
        k_hops = {"hops": k, "te": min(k, TE_SHORTEST)}.get(method, 1)

        paths: list[Path] = []
        cand: list[bool] = []
        for s in hosts:
            for d in hosts:
                if s == d:
                    continue
                by_hops = ranker.ranked(s, d, "hops", k_hops)
                if not by_hops:
                    raise ValueError(f"no path from {nodes[s]!r} to {nodes[d]!r}")
                by_inv = ranker.ranked(s, d, "invcap", k if method == "invcap" else 1)
                if method == "hops":
                    chosen = [p for _, p in by_hops[:k]]
                elif method == "invcap":
                    chosen = [p for _, p in by_inv[:k]]
                elif method == "disjoint":
                    chosen = ranker.greedy_disjoint(s, d, k)
                else:
                    chosen = _te_candidates(by_hops[:k_hops], flows.get((s, d), []), k)
                extras = _ties(by_inv) + _ties(by_hops)
                seen: set[tuple[int, ...]] = set()
                for path, is_cand in [(p, True) for p in chosen] + [(p, False) for p in extras]:
                    if path not in seen:
                        seen.add(path)
                        paths.append(tuple(nodes[i] for i in path))
                        cand.append(is_cand)
        ps = cls(tuple(nodes), tuple(edges), caps, tuple(paths), np.array(cand, bool), k, method)
        log.debug(
            "path set %s k=%d: %d OD pairs, %d paths (%d candidates) in %.2fs",
            method, k, ps.n_ods, ps.n_paths, int(ps.candidate.sum()), time.perf_counter() - t0,
        )
        return ps

    # ------------------------------------------------------------------ sizes and lookups
    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_links(self) -> int:
        return len(self.edges)

    @property
    def n_paths(self) -> int:
        return len(self.paths)

    @property
    def n_ods(self) -> int:
        return len(self.od_pairs)

    @cached_property
    def _od_lookup(self) -> dict[Link, int]:
        return {od: i for i, od in enumerate(self.od_pairs)}

    @cached_property
    def _link_lookup(self) -> dict[Link, int]:
        return {e: i for i, e in enumerate(self.edges)}

    @cached_property
    def _node_lookup(self) -> dict[Node, int]:
        return {n: i for i, n in enumerate(self.nodes)}

    def node_index(self, node: Node) -> int:
        """Position of ``node`` in :attr:`nodes` (row/column of traffic matrices)."""
        try:
            return self._node_lookup[node]
        except KeyError:
            raise KeyError(f"unknown node {node!r}") from None

    def od_index(self, s: Node, d: Node) -> int:
        """Index of OD pair ``(s, d)`` in :attr:`od_pairs`."""
        try:
            return self._od_lookup[(s, d)]
        except KeyError:
            raise KeyError(f"no OD pair {s!r} -> {d!r} in this path set") from None

    def has_link(self, u: Node, v: Node) -> bool:
        """Whether directed link ``(u, v)`` is one of :attr:`edges`."""
        return (u, v) in self._link_lookup

    def link_index(self, u: Node, v: Node) -> int:
        """Index of directed link ``(u, v)`` in :attr:`edges`."""
        try:
            return self._link_lookup[(u, v)]
        except KeyError:
            raise KeyError(f"no link {u!r} -> {v!r} in this path set") from None

    def paths_of(self, od: int | Link) -> range:
        """Path ids of one OD pair (given by index or as ``(s, d)``), candidates first."""
        i = self.od_index(*od) if isinstance(od, tuple) else int(od)
        if not 0 <= i < self.n_ods:
            raise IndexError(f"OD index {i} out of range 0..{self.n_ods - 1}")
        return range(int(self.od_ptr[i]), int(self.od_ptr[i + 1]))

    def links_of(self, path_id: int) -> list[Link]:
        """The links of path ``path_id``, in order."""
        path = self.paths[path_id]
        return list(pairwise(path))

    # ------------------------------------------------------------------ derived arrays
    @cached_property
    def od_src(self) -> np.ndarray:
        """Node position of each OD pair's source, shape [n_ods]."""
        return _readonly(np.array([self._node_lookup[s] for s, _ in self.od_pairs], np.int64))

    @cached_property
    def od_dst(self) -> np.ndarray:
        """Node position of each OD pair's destination, shape [n_ods]."""
        return _readonly(np.array([self._node_lookup[d] for _, d in self.od_pairs], np.int64))

    @cached_property
    def od_flat(self) -> np.ndarray:
        """Index of each OD pair in a flattened [N*N] traffic matrix."""
        return _readonly(self.od_src * self.n_nodes + self.od_dst)

    @cached_property
    def path_flat(self) -> np.ndarray:
        """Index of each path's OD pair in a flattened [N*N] traffic matrix."""
        return _readonly(self.od_flat[self.path_od])

    @cached_property
    def lex_rank(self) -> np.ndarray:
        """Rank of each path's sequence of node positions: the tie-breaker between equal costs."""
        keys = [tuple(self._node_lookup[n] for n in p) for p in self.paths]
        rank = np.empty(len(keys), np.int64)
        rank[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
        return _readonly(rank)

    def cost(self, metric: str) -> np.ndarray:
        """Cost of every path, [P]: ``"hops"`` or ``"invcap"`` (sum of ``max_capacity/capacity``).

        Rounded to :data:`COST_DECIMALS`, exactly as the ranking of :meth:`from_graph`.
        """
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
        return self._costs[metric]

    @cached_property
    def _costs(self) -> dict[str, np.ndarray]:
        ref = float(self.capacities.max())
        w = {e: ref / c for e, c in zip(self.edges, self.capacities)}
        return {
            "hops": _readonly(np.array([len(p) - 1 for p in self.paths], np.float64)),
            "invcap": _readonly(np.array([_cost(w, p) for p in self.paths], np.float64)),
        }

    def link_mask(self, links: Iterable[Link]) -> np.ndarray:
        """Bool [L], True for each link in ``links`` (directed). Unknown links raise ``KeyError``."""
        mask = np.zeros(self.n_links, bool)
        for u, v in links:
            mask[self.link_index(u, v)] = True
        return mask

    def live_paths(self, down_links: Iterable[Link] = ()) -> np.ndarray:
        """Bool [P], True for each path that uses none of ``down_links``.

        Links that are not in the set are ignored: no path of the set uses them.
        """
        lookup = self._link_lookup
        idx = [lookup[e] for e in down_links if e in lookup]
        if not idx:
            return np.ones(self.n_paths, bool)
        mask = np.zeros(self.n_links)
        mask[idx] = 1.0
        return np.asarray(self.incidence @ mask) == 0

    # ------------------------------------------------------------------ identity
    @cached_property
    def _fingerprint(self) -> str:
        pos = self._node_lookup
        doc = {
            "format": _FORMAT,
            "nodes": [str(n) for n in self.nodes],
            "links": [[pos[u], pos[v], float(c)] for (u, v), c in zip(self.edges, self.capacities)],
            "k": self.k,
            "method": self.method,
            "paths": [[pos[n] for n in p] for p in self.paths],
            "candidate": [bool(c) for c in self.candidate],
        }
        blob = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def fingerprint(self) -> str:
        """sha256 (hex) of nodes, links, capacities, k, method, paths and candidate flags."""
        return self._fingerprint

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PathSet):
            return NotImplemented
        return self is other or self.fingerprint() == other.fingerprint()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        return (
            f"PathSet(method={self.method!r}, k={self.k}, nodes={self.n_nodes}, "
            f"links={self.n_links}, ods={self.n_ods}, paths={self.n_paths}, "
            f"fingerprint={self.fingerprint()[:12]})"
        )


# ---------------------------------------------------------------------- helpers
def graph_links(graph: nx.DiGraph) -> tuple[list[Node], list[Link], np.ndarray]:
    """Nodes (graph order), directed links sorted by node position, and their capacities.

    This is the canonical link order of every path set and of :mod:`sim.optimal`; it depends only on
    the node order and the link set, not on the order in which links were added.
    """
    nodes = list(graph.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    edges = sorted(graph.edges, key=lambda e: (pos[e[0]], pos[e[1]]))
    caps = []
    for u, v in edges:
        c = graph.edges[u, v].get("capacity_mbps")
        try:
            c = float(c)
        except (TypeError, ValueError):
            raise ValueError(f"link {u!r} -> {v!r} has no numeric capacity_mbps ({c!r})") from None
        if not (math.isfinite(c) and c > 0):
            raise ValueError(f"link {u!r} -> {v!r} has capacity_mbps {c!r}; it must be > 0")
        caps.append(c)
    return nodes, edges, np.array(caps, np.float64)


def _cost(link_w: Mapping[Any, float], path: Sequence[Any]) -> float:
    # fsum: exactly rounded, so a path's cost does not depend on the summation order.
    return round(math.fsum(link_w[e] for e in pairwise(path)), COST_DECIMALS)


def _ranked(
    h: nx.DiGraph,
    s: Node,
    d: Node,
    weight: str | None,
    cost: Callable[[Path], float],
    k: int,
    pos: dict[Node, int],
) -> list[tuple[float, tuple[int, ...], Path]]:
    """The cheapest simple paths s -> d as ``(cost, node positions, path)``, best first.

    Collects at least ``k`` paths and every path tied with the k-th (and with the first), so that the
    cut at k follows our tie rule, not networkx's enumeration order.
    """
    found: list[tuple[float, tuple[int, ...], Path]] = []
    try:
        for path in nx.shortest_simple_paths(h, s, d, weight=weight):
            c = cost(path)
            if len(found) >= k and c > found[k - 1][0]:
                break
            if len(found) >= k + MAX_TIES:
                log.warning("more than %d equal-cost paths %r -> %r; keeping %d", MAX_TIES, s, d,
                            len(found))
                break
            found.append((c, tuple(pos[n] for n in path), tuple(path)))
    except nx.NetworkXNoPath:
        return []
    found.sort(key=lambda t: (t[0], t[1]))
    return found


def _te_flow_paths(graph: nx.DiGraph, ranker: _Ranker, caps: np.ndarray, hosts: list[int],
                   keep: int) -> dict[tuple[int, int], list[tuple[float, tuple[int, ...]]]]:
    """The flow paths of the ``te`` method (:mod:`sim.flowpaths`) for the host pairs."""
    if len(hosts) < 2:
        return {}
    synthetic = [synthetic_traffic(graph, 1, seed, noise=0.0, bursts_per_day=0.0).tm[0]
                 for seed in flowpaths.SEEDS]
    n = len(ranker.nodes)
    matrices = flowpaths.representative_matrices(n, ranker.tails, ranker.heads, caps, hosts,
                                                 synthetic)
    return flowpaths.flow_paths(n, ranker.tails, ranker.heads, caps, hosts, matrices, keep)


def _te_candidates(shortest: list[tuple[float, tuple[int, ...]]],
                   flows: list[tuple[float, tuple[int, ...]]], k: int) -> list[tuple[int, ...]]:
    """The shortest paths by hops, then the flow paths by decreasing share, k at most."""
    out = [p for _, p in shortest]
    for _, p in flows:
        if len(out) >= k:
            break
        if p not in out:
            out.append(p)
    return out


def _ties(ranked: list[tuple[float, tuple[int, ...]]]) -> list[tuple[int, ...]]:
    """Paths tied with the cheapest one (the equal-cost shortest paths), at most MAX_TIES."""
    if not ranked:
        return []
    return [p for c, p in ranked if c == ranked[0][0]][:MAX_TIES]


class _Ranker:
    """The ranking of :meth:`PathSet.from_graph`, per OD pair and metric, on node positions.

    Fast (:mod:`sim.pathsearch`: compiled all-pairs distances, then a slack-bounded enumeration per
    pair) and identical to ranking networkx's Yen enumeration (:func:`_ranked`): the same set of paths
    (all those within the k-th cost), sorted by the same key. Where more than ``k + MAX_TIES`` paths
    tie within the k-th cost, the old enumeration order decided which were kept, so those pairs
    (rare: large grids of equal links) are ranked by :func:`_ranked` itself.
    """

    def __init__(self, nodes: Sequence[Node], edges: Sequence[Link], caps: np.ndarray) -> None:
        self.nodes = list(nodes)
        pos = {n: i for i, n in enumerate(self.nodes)}
        self.pos = pos
        self.tails = np.array([pos[u] for u, _ in edges], np.int64)
        self.heads = np.array([pos[v] for _, v in edges], np.int64)
        self.edges = list(edges)
        ref = float(caps.max()) if len(caps) else 1.0
        inv = [ref / c for c in caps.tolist()]
        self.inv_w = {(pos[u], pos[v]): w for (u, v), w in zip(edges, inv)}
        n = len(self.nodes)
        self.search = {
            "hops": PathSearch(n, self.tails, self.heads, np.ones(len(edges)), integral=True),
            "invcap": PathSearch(n, self.tails, self.heads, inv),
        }
        self.fallbacks = 0
        self._h: nx.DiGraph | None = None

    def cost(self, metric: str, path: tuple[int, ...]) -> float:
        if metric == "hops":
            return len(path) - 1
        return _cost(self.inv_w, path)

    def ranked(self, s: int, d: int, metric: str, k: int) -> list[tuple[float, tuple[int, ...]]]:
        """``(cost, positions)`` of the cheapest simple paths s -> d, best first (see _ranked)."""
        found = self.search[metric].ranked(s, d, k, k + MAX_TIES)
        ranked = self._cut(metric, found, k)
        if ranked is None:
            return self._nx_ranked(self.graph(), s, d, metric, k)
        return ranked

    def _cut(self, metric: str, found: list[tuple[int, ...]] | None,
             k: int) -> list[tuple[float, tuple[int, ...]]] | None:
        if found is None:
            return None
        ranked = sorted((self.cost(metric, p), p) for p in found)
        if len(ranked) > k:
            ranked = [r for r in ranked if r[0] <= ranked[k - 1][0]]
        return None if len(ranked) > k + MAX_TIES else ranked

    def graph(self, removed: Iterable[int] = ()) -> nx.DiGraph:
        """The networkx graph of the links (without ``removed``), for the fallback."""
        if self._h is None:
            h = nx.DiGraph()
            h.add_nodes_from(self.nodes)
            for (u, v), t, w in zip(self.edges, self.tails.tolist(), self.heads.tolist()):
                h.add_edge(u, v, invcap=self.inv_w[t, w])
            self._h = h
        gone = [self.edges[i] for i in removed]
        if not gone:
            return self._h
        g = self._h.copy()
        g.remove_edges_from(gone)
        return g

    def _nx_ranked(self, h: nx.DiGraph, s: int, d: int, metric: str,
                   k: int) -> list[tuple[float, tuple[int, ...]]]:
        self.fallbacks += 1
        names = {n: i for i, n in enumerate(self.nodes)}
        link_w = {(self.nodes[a], self.nodes[b]): w for (a, b), w in self.inv_w.items()}

        def cost(path: Path) -> float:
            return len(path) - 1 if metric == "hops" else _cost(link_w, path)

        weight = None if metric == "hops" else "invcap"
        return [(c, p) for c, p, _ in _ranked(h, self.nodes[s], self.nodes[d], weight, cost, k,
                                              names)]

    def greedy_disjoint(self, s: int, d: int, k: int) -> list[tuple[int, ...]]:
        """Greedy edge-disjoint min-hop paths: take the best, remove its links, repeat."""
        link_of = {(t, h): i for i, (t, h) in enumerate(zip(self.tails.tolist(),
                                                             self.heads.tolist()))}
        alive = np.ones(len(self.edges), bool)
        out: list[tuple[int, ...]] = []
        n = len(self.nodes)
        while len(out) < k:
            t, h = self.tails[alive], self.heads[alive]
            ones = np.ones(len(t))
            to_d = distances_to(n, t, h, ones, d)
            if not math.isfinite(to_d[s]):
                break
            found = enumerate_within(slack_adjacency(n, t, h, ones, to_d), s, d, 1,
                                     1 + MAX_TIES, 0.0, self.search["hops"].blocks.blocked(s, d))
            ranked = self._cut("hops", found, 1)
            if ranked is None:
                ranked = self._nx_ranked(self.graph(np.flatnonzero(~alive)), s, d, "hops", 1)
            path = ranked[0][1]
            out.append(path)
            alive[[link_of[e] for e in pairwise(path)]] = False
        return out
