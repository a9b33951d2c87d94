"""Detours for local repair: where traffic on a path can go on when the next link fails.

Traffic towards ``d`` that reaches switch ``x`` and leaves it by the link ``(x, y)`` can be
moved, at ``x`` alone, onto the rest of any other path of the set that passes ``x``, ends at
``d`` and leaves ``x`` by another link: the switches after ``x`` on that path already forward
its label, so such a detour costs no rule. Only where the path set has none (its few paths
towards ``d`` all leave ``x`` by ``(x, y)``) a *detour tunnel* is added: the shortest way from
``x`` to ``d`` without that link, a path of its own beyond the set's ids.

A detour from ``x`` never uses ``(x, y)`` nor ``(y, x)`` (a simple path does not come back to
``x``), so a single link failure never needs a second detour. Detours that also avoid ``y``
(when ``y`` is not ``d``) come first: they survive the loss of switch ``y`` as well.
"""
from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sim.paths import Link, Node, Path, PathSet

Hop = tuple[Node, Node, Node]
"""(switch x, next switch y, destination d): traffic towards d leaving x by (x, y)."""


class Detour(NamedTuple):
    """The rest of path ``path_id`` from its ``position``-th node (the switch that detours);
    ids from the path set's ``n_paths`` on are detour tunnels (:attr:`Detours.tunnels`)."""

    path_id: int
    position: int
    next_hop: Node
    hops: int
    """Links from the detouring switch to the destination."""


@dataclass(frozen=True)
class Detours:
    by_hop: dict[Hop, tuple[Detour, ...]]
    """Every hop of a usable path that can be detoured: its detours, best first."""
    tunnels: tuple[Path, ...]
    """Detour tunnel ``i`` has the id ``n_paths + i``."""

    def path(self, path_set: PathSet, path_id: int) -> Path:
        """The nodes of a path of the set or of a detour tunnel."""
        if path_id < path_set.n_paths:
            return path_set.paths[path_id]
        return self.tunnels[path_id - path_set.n_paths]


def detours(path_set: PathSet, usable: np.ndarray | None = None,
            links: Iterable[Link] | None = None, limit: int = 2) -> Detours:
    """For every hop ``(x, y)`` of a usable path towards ``d``: up to ``limit`` detours over
    usable paths, each leaving ``x`` by another next switch, best first (avoiding ``y``, then
    fewest links, then lowest path id); where there is none, one detour tunnel over ``links``
    (avoiding ``y`` if it can, fewest links, then the smallest sequence of node positions).
    A hop is left out only when ``x`` cannot reach ``d`` without ``(x, y)``.

    ``usable[p]`` (default: every path) says which paths can carry a detour, ``links``
    (default: every link of the set) which links a tunnel may use (e.g. those whose ports are
    known). Deterministic: a pure function of the path set, ``usable`` and ``links``.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    usable = np.ones(path_set.n_paths, bool) if usable is None else np.asarray(usable, bool)
    if usable.shape != (path_set.n_paths,):
        raise ValueError(f"usable has shape {usable.shape}, expected ({path_set.n_paths},)")
    suffixes: dict[tuple[Node, Node], list[Detour]] = defaultdict(list)
    hops: set[Hop] = set()
    for path_id in map(int, np.flatnonzero(usable)):
        path = path_set.paths[path_id]
        for position, node in enumerate(path[:-1]):
            suffixes[node, path[-1]].append(
                Detour(path_id, position, path[position + 1], len(path) - 1 - position))
            hops.add((node, path[position + 1], path[-1]))
    for options in suffixes.values():
        options.sort(key=lambda detour: (detour.hops, detour.path_id))
    graph = _Graph(path_set, path_set.edges if links is None else links)
    by_hop: dict[Hop, tuple[Detour, ...]] = {}
    tunnels: dict[Path, int] = {}
    for hop in sorted(hops, key=lambda hop: tuple(path_set.node_index(n) for n in hop)):
        chosen = _choose(path_set, hop, suffixes[hop[0], hop[2]], limit)
        if not chosen:
            tunnel = graph.detour(hop)
            if tunnel is not None:
                tunnel_id = tunnels.setdefault(tunnel, path_set.n_paths + len(tunnels))
                chosen = (Detour(tunnel_id, 0, tunnel[1], len(tunnel) - 1),)
        if chosen:
            by_hop[hop] = chosen
    return Detours(by_hop, tuple(tunnels))


def _choose(path_set: PathSet, hop: Hop, options: list[Detour], limit: int) -> tuple[Detour, ...]:
    """The best ``limit`` options (sorted by links, path id) leaving by distinct next switches
    other than ``y``; those that avoid ``y`` altogether first."""
    _, y, d = hop
    others = [option for option in options if option.next_hop != y]

    def avoids_y(option: Detour) -> bool:
        return y == d or y not in path_set.paths[option.path_id][option.position + 1:]

    chosen: list[Detour] = []
    for option in [o for o in others if avoids_y(o)] + [o for o in others if not avoids_y(o)]:
        if len(chosen) == limit:
            break
        if all(option.next_hop != taken.next_hop for taken in chosen):
            chosen.append(option)
    return tuple(chosen)


class _Graph:
    """The usable links, for detour tunnels: shortest paths by hops, ties to the smallest
    sequence of node positions (as the path set breaks its ties)."""

    def __init__(self, path_set: PathSet, links: Iterable[Link]) -> None:
        self.position = {node: i for i, node in enumerate(path_set.nodes)}
        self.succ: dict[Node, list[Node]] = defaultdict(list)
        self.pred: dict[Node, list[Node]] = defaultdict(list)
        for u, v in sorted(links, key=lambda link: (self.position[link[0]],
                                                    self.position[link[1]])):
            self.succ[u].append(v)
            self.pred[v].append(u)

    def detour(self, hop: Hop) -> Path | None:
        x, y, d = hop
        banned_links = {(x, y), (y, x)}
        if y != d:
            path = self._shortest(x, d, banned_links, {y})
            if path is not None:
                return path
        return self._shortest(x, d, banned_links, set())

    def _shortest(self, x: Node, d: Node, banned_links: set[Link],
                  banned_nodes: set[Node]) -> Path | None:
        distance = {d: 0}  # hops to d, by a breadth-first search backwards from d
        queue = deque([d])
        while queue:
            v = queue.popleft()
            for u in self.pred[v]:
                if u not in distance and u not in banned_nodes and (u, v) not in banned_links:
                    distance[u] = distance[v] + 1
                    queue.append(u)
        if x not in distance:
            return None
        path = [x]
        while path[-1] != d:
            u = path[-1]
            path.append(min((v for v in self.succ[u] if distance.get(v) == distance[u] - 1
                             and (u, v) not in banned_links), key=self.position.__getitem__))
        return tuple(path)
