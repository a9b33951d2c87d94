"""Fast ranking of near-shortest simple paths, on node positions (the engine of :mod:`sim.paths`).

:meth:`sim.paths.PathSet.from_graph` needs, per OD pair and metric, *every* simple path whose cost
is at most the cost of the k-th cheapest one (so that its own tie rule, not an enumeration order,
decides the cut at k). networkx's Yen (``shortest_simple_paths``) gives that in pure Python, one
Dijkstra per spur node: 146-244 s on zoo Cogentco. This module gets the same set another way:

1. all-pairs distances ``D`` once per metric (``scipy.sparse.csgraph.dijkstra``, compiled);
2. per destination d, the *slack* of every link, ``w(u, v) + D[v, d] - D[u, d] >= 0`` (how much a
   path grows by taking that link instead of going straight on), each node's out-links sorted by it;
3. per OD pair a depth-first enumeration of the simple paths whose total slack is within a budget,
   pruned by the sorted slacks (a branch stops as soon as the next link exceeds the budget), with
   the IDA* rule for the budget: start at 0 (the shortest paths) and raise it to the smallest slack
   that was pruned, until at least k paths are in. Near-shortest path enumeration in the sense of
   Byers and Waterman (1984) / Carlyle and Wood (2005);
4. the enumeration only enters the biconnected blocks on the way from s to d (the block-cut tree
   path): a simple path cannot leave that chain and come back, and without this cut a pair behind
   a bridge with fewer than k simple paths raised the budget until it enumerated the whole graph
   (5 s for one pair of zoo Geant2012).

The result is the same set of paths as the Yen enumeration cut at the k-th cost; ``None`` tells the
caller that more than ``cap`` paths tie within that cost, where the old enumeration order (not the
set) decided what was kept, so the caller falls back to networkx for that pair and stays identical.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike
from scipy.sparse.csgraph import dijkstra

#: Slack tolerance for float metrics: a path whose slack is within this of the budget is collected;
#: the caller then decides by exactly rounded costs. Weights are >= 1 (``max_capacity/capacity``).
SLACK_TOL = 1e-6

Adjacency = list[list[tuple[float, int]]]


class PathSearch:
    """One metric's distances and per-destination slack-sorted adjacency over node positions.

    ``tails``, ``heads``: link end positions (0..n-1); ``weights``: link weights (> 0).
    """

    def __init__(self, n: int, tails: ArrayLike, heads: ArrayLike, weights: ArrayLike,
                 integral: bool = False) -> None:
        self.n = n
        self.tails = np.asarray(tails, np.int64)
        self.heads = np.asarray(heads, np.int64)
        self.weights = np.asarray(weights, np.float64)
        self.tol = 0.0 if integral else SLACK_TOL
        matrix = sp.csr_matrix((self.weights, (self.tails, self.heads)), shape=(n, n))
        self.dist = dijkstra(matrix, directed=True)
        self._adj: dict[int, Adjacency] = {}
        self.blocks = BlockChains(n, self.tails, self.heads)

    def adjacency(self, d: int) -> Adjacency:
        """Out-links of each node as ``(slack, head)`` toward destination ``d``, cheapest first."""
        adj = self._adj.get(d)
        if adj is None:
            adj = self._adj[d] = slack_adjacency(self.n, self.tails, self.heads, self.weights,
                                                 self.dist[:, d])
        return adj

    def ranked(self, s: int, d: int, k: int, cap: int) -> list[tuple[int, ...]] | None:
        """Every simple path s -> d (node positions) within the k-th cheapest one's slack.

        At least ``min(k, number of simple paths)`` paths, unordered; ``None`` when more than ``cap``
        paths fall within the final budget. ``[]`` when d is unreachable.
        """
        if not math.isfinite(self.dist[s, d]):
            return []
        return enumerate_within(self.adjacency(d), s, d, k, cap, self.tol,
                                self.blocks.blocked(s, d))


def slack_adjacency(n: int, tails: np.ndarray, heads: np.ndarray, weights: np.ndarray,
                    to_d: np.ndarray) -> Adjacency:
    """Per node, ``(slack, head)`` of its out-links toward a destination at distances ``to_d``."""
    ok = np.isfinite(to_d[heads]) & np.isfinite(to_d[tails])
    t, h = tails[ok], heads[ok]
    slack = np.maximum(weights[ok] + to_d[h] - to_d[t], 0.0)
    order = np.lexsort((h, slack, t))
    adj: Adjacency = [[] for _ in range(n)]
    for u, sl, v in zip(t[order].tolist(), slack[order].tolist(), h[order].tolist()):
        adj[u].append((sl, v))
    return adj


def enumerate_within(adj: Adjacency, s: int, d: int, k: int, cap: int, tol: float,
                     blocked: list[bool] | None = None) -> list[tuple[int, ...]] | None:
    """IDA* over slack budgets: all simple s -> d paths within the smallest budget holding k.

    ``blocked`` (per node) marks nodes no path may visit.
    """
    budget = 0.0
    while True:
        found, pruned = _paths_within(adj, s, d, budget + tol, cap, blocked)
        if found is None:
            return None
        if len(found) >= k or not math.isfinite(pruned):
            return found
        budget = pruned


def _paths_within(adj: Adjacency, s: int, d: int, limit: float, cap: int,
                  blocked: list[bool] | None) -> tuple[list[tuple[int, ...]] | None, float]:
    """Simple paths s -> d with total slack <= ``limit`` (None past ``cap``) and the smallest
    total slack of a pruned branch (``inf`` when nothing was pruned)."""
    found: list[tuple[int, ...]] = []
    pruned = math.inf
    on_path = list(blocked) if blocked is not None else [False] * len(adj)  # blocked: never enter
    on_path[s] = True
    path = [s]
    totals = [0.0]
    stack = [iter(adj[s])]
    while stack:
        base = totals[-1]
        descended = False
        for slack, v in stack[-1]:
            total = base + slack
            if total > limit:
                if total < pruned:
                    pruned = total
                break  # sorted by slack: every later link exceeds the limit too
            if on_path[v]:
                continue
            if v == d:
                found.append((*path, d))
                if len(found) > cap:
                    return None, pruned
                continue
            on_path[v] = True
            path.append(v)
            totals.append(total)
            stack.append(iter(adj[v]))
            descended = True
            break
        if not descended:
            stack.pop()
            totals.pop()
            on_path[path.pop()] = False
    return found, pruned


def distances_to(n: int, tails: np.ndarray, heads: np.ndarray, weights: np.ndarray,
                 d: int) -> np.ndarray:
    """Shortest distance from every node to ``d`` over the given links (inf where unreachable)."""
    reverse = sp.csr_matrix((weights, (heads, tails)), shape=(n, n))
    return dijkstra(reverse, directed=True, indices=d)


class BlockChains:
    """Which nodes a simple path s -> d may visit: those of the biconnected blocks on the path
    between s and d in the block-cut tree of the underlying undirected graph."""

    def __init__(self, n: int, tails: np.ndarray, heads: np.ndarray) -> None:
        self.n = n
        und = nx.Graph()
        und.add_nodes_from(range(n))
        und.add_edges_from(zip(tails.tolist(), heads.tolist()))
        blocks = sorted(sorted(b) for b in nx.biconnected_components(und))
        self.members = [np.array(b, np.int64) for b in blocks]
        cuts = set(nx.articulation_points(und))
        tree = nx.Graph()  # block b is tree node n + b; cut vertices keep their own number
        self.rep = list(range(n))
        for b, nodes in enumerate(blocks):
            tree.add_node(n + b)
            for u in nodes:
                if u in cuts:
                    tree.add_edge(u, n + b)
                else:
                    self.rep[u] = n + b
        self.parent: dict[int, int] = {}
        self.depth: dict[int, int] = {}
        for root in sorted(tree.nodes):
            if root in self.depth:
                continue
            self.parent[root], self.depth[root] = root, 0
            for u, v in nx.bfs_edges(tree, root, sort_neighbors=sorted):
                self.parent[v], self.depth[v] = u, self.depth[u] + 1
        self._cache: dict[tuple[int, int], list[bool]] = {}
        self.trivial = len(blocks) <= 1

    def blocked(self, s: int, d: int) -> list[bool] | None:
        """Per node, True where no simple s -> d path can pass (None: nothing is excluded)."""
        if self.trivial:
            return None
        a, b = self.rep[s], self.rep[d]
        key = (a, b)
        mask = self._cache.get(key)
        if mask is None:
            ok = np.zeros(self.n, bool)
            for t in self._tree_path(a, b):
                if t >= self.n:
                    ok[self.members[t - self.n]] = True
            ok[[s, d]] = True
            mask = self._cache[key] = (~ok).tolist()
        return mask

    def _tree_path(self, a: int, b: int) -> list[int]:
        if a not in self.depth or b not in self.depth:
            return [a, b]
        left, right = [a], [b]
        while self.depth[a] > self.depth[b]:
            a = self.parent[a]
            left.append(a)
        while self.depth[b] > self.depth[a]:
            b = self.parent[b]
            right.append(b)
        while a != b:
            a, b = self.parent[a], self.parent[b]
            left.append(a)
            right.append(b)
        return left + right
