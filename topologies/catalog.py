"""The topology catalog: built-in networks and files, all loaded into one graph shape.

``load_topology(spec, **params)`` is the single entry point. ``spec`` is a built-in name,
optionally with parameters (``"fat-tree:k=4"``, ``"ring:n=8,capacity_mbps=100"``), or a
topology file (see :mod:`topologies.loaders` for formats). Keyword ``params`` override those
of the string. The graph shape is described in :mod:`topologies.loaders`; generated networks
go through the same validating builder as files, so they are indistinguishable downstream.

Built-ins:

- ``abilene``, ``geant``: facts copied from the shared data set (SNDlib capacities; GEANT
  capacities as published with FIGRET), with coordinates.
- ``nsfnet``: the classic 14-node, 21-link NSFNET T1 backbone of the routing literature,
  uniform 10,000 Mbit/s links (the T1 lines ran at 1.544 Mbit/s, far too small to compare with
  the others); ``capacity_mbps`` overrides.
- ``fat-tree`` (``k``, even, default 4): k²/4 core, k²/2 aggregation and k²/2 edge switches;
  only edge switches take hosts (node attribute ``hosts``).
- ``linear`` (``n``, default 4) and ``ring`` (``n``, default 6).
- ``wan`` (``n`` nodes, ``edge`` of them taking traffic, ``seed``): a seeded Waxman-style
  wide-area network for scale tests (:func:`wan`).

Generated networks default to 1000 Mbit/s links (``capacity_mbps``).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import networkx as nx

from topologies.loaders import (
    LinkFact,
    NodeFact,
    TopologyError,
    build_graph,
    positive_number,
    read_topology_file,
)

__all__ = [
    "TopologyError",
    "builtin_names",
    "builtin_parameters",
    "describe_builtins",
    "fat_tree",
    "linear",
    "load_topology",
    "parse_spec",
    "physical_links",
    "ring",
    "topology_summary",
    "wan",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_CAPACITY_MBPS = 1000.0


# -- generators ----------------------------------------------------------------------------

def fat_tree(k: int = 4, capacity_mbps: float = DEFAULT_CAPACITY_MBPS) -> nx.DiGraph:
    """A k-ary fat tree (Al-Fares et al., 2008); hosts attach to edge switches only.

    Nodes, in dpid order: core ``c1..c{k²/4}``, then per pod p aggregation ``a{p}_{i}`` and
    edge ``e{p}_{i}`` (i = 1..k/2). Aggregation switch i of every pod connects to core
    switches (i-1)·k/2+1 .. i·k/2, so every core switch reaches every pod once.
    """
    if k < 2 or k % 2:
        raise TopologyError(f"fat-tree: k must be an even integer >= 2, got {k}")
    half = k // 2
    cores = [f"c{j}" for j in range(1, half * half + 1)]
    pods = range(1, k + 1)
    aggs = [f"a{p}_{i}" for p in pods for i in range(1, half + 1)]
    edges = [f"e{p}_{i}" for p in pods for i in range(1, half + 1)]
    nodes = [NodeFact(n, hosts=False) for n in cores + aggs] + [NodeFact(n) for n in edges]
    pairs = [(f"e{p}_{i}", f"a{p}_{j}") for p in pods for i in range(1, half + 1)
             for j in range(1, half + 1)]
    pairs += [(f"a{p}_{i}", cores[(i - 1) * half + j]) for p in pods
              for i in range(1, half + 1) for j in range(half)]
    return _generated(f"fat-tree-k{k}", f"fat-tree:k={k}", nodes, pairs, capacity_mbps)


def linear(n: int = 4, capacity_mbps: float = DEFAULT_CAPACITY_MBPS) -> nx.DiGraph:
    """A chain s1 - s2 - ... - sn."""
    if n < 2:
        raise TopologyError(f"linear: n must be >= 2, got {n}")
    names = [f"s{i}" for i in range(1, n + 1)]
    return _generated(f"linear-{n}", f"linear:n={n}", [NodeFact(x) for x in names],
                      list(pairwise(names)), capacity_mbps)


def ring(n: int = 6, capacity_mbps: float = DEFAULT_CAPACITY_MBPS) -> nx.DiGraph:
    """A cycle s1 - s2 - ... - sn - s1: the smallest network with two paths per pair."""
    if n < 3:
        raise TopologyError(f"ring: n must be >= 3, got {n}")
    names = [f"s{i}" for i in range(1, n + 1)]
    return _generated(f"ring-{n}", f"ring:n={n}", [NodeFact(x) for x in names],
                      list(zip(names, names[1:] + names[:1])), capacity_mbps)


def wan(n: int = 100, edge: int = 20, seed: int = 1,
        capacity_mbps: float = DEFAULT_CAPACITY_MBPS) -> nx.DiGraph:
    """A seeded wide-area network of ``n`` nodes, for tests and benchmarks at scale.

    Nodes ``w0..w{n-1}`` lie uniformly on the unit square; the links are the Euclidean
    minimum spanning tree (so it is connected) plus Waxman links, each pair with probability
    ``β · exp(-d / (α √2))`` with BRITE's ``α = 0.15`` (long-haul links are likely enough for
    paths of a few hops) and ``β`` set so that they add ``n / 2`` links on average: a mean
    degree about 3 at every size, as in backbones. Capacities by degree: a link whose ends
    both have degree >= 5 gets 10x ``capacity_mbps``, >= 3 gets 4x, else 1x (a fat core, thin
    access). Traffic
    enters and leaves at the ``edge`` nodes of lowest degree (ties: lower index; node
    attribute ``hosts``); ``edge = 0`` means every node.
    """
    import numpy as np
    from scipy.sparse.csgraph import minimum_spanning_tree

    if n < 3:
        raise TopologyError(f"wan: n must be >= 3, got {n}")
    if not 0 <= edge <= n or edge == 1:
        raise TopologyError(f"wan: edge must be 0 (all) or 2..n, got {edge}")
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2))
    dist = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    tree = minimum_spanning_tree(dist).tocoo()
    linked = np.zeros((n, n), bool)
    linked[tree.row, tree.col] = True
    closeness = np.triu(np.exp(-dist / (0.15 * np.sqrt(2.0))), 1)
    beta = 0.5 * n / closeness.sum()
    linked |= np.triu(rng.random((n, n)) < beta * closeness, 1)
    linked = np.triu(linked | linked.T, 1)
    degree = (linked | linked.T).sum(1)
    hosts = np.ones(n, bool) if edge == 0 else np.isin(
        np.arange(n), np.lexsort((np.arange(n), degree))[:edge])
    names = [f"w{i}" for i in range(n)]
    nodes = [NodeFact(names[i], pos=(float(xy[i, 0]), float(xy[i, 1])), hosts=bool(hosts[i]))
             for i in range(n)]
    links = []
    base = positive_number(capacity_mbps, "capacity_mbps",
                           lambda problem: TopologyError(f"wan: {problem}"))
    for i, (u, v) in enumerate(zip(*np.nonzero(linked))):
        low = min(degree[u], degree[v])
        factor = 10.0 if low >= 5 else 4.0 if low >= 3 else 1.0
        links.append(LinkFact(names[u], names[v], base * factor, f"link {i}"))
    return build_graph(f"wan-{n}-{edge}-{seed}", nodes, links,
                       source=f"wan:n={n},edge={edge},seed={seed}", undirected=True)


def _generated(name: str, source: str, nodes: list[NodeFact],
               pairs: Iterable[tuple[str, str]], capacity_mbps: float) -> nx.DiGraph:
    capacity = positive_number(capacity_mbps, "capacity_mbps",
                               lambda problem: TopologyError(f"{source}: {problem}"))
    links = [LinkFact(u, v, capacity, f"link {i}") for i, (u, v) in enumerate(pairs)]
    return build_graph(name, nodes, links, source=source, undirected=True)


def _data_topology(name: str) -> Callable[..., nx.DiGraph]:
    def load(capacity_mbps: float | None = None) -> nx.DiGraph:
        graph = read_topology_file(DATA_DIR / f"{name}.json")
        graph.graph["source"] = name
        if capacity_mbps is not None:
            capacity = positive_number(capacity_mbps, "capacity_mbps",
                                       lambda problem: TopologyError(f"{name}: {problem}"))
            nx.set_edge_attributes(graph, capacity, "capacity_mbps")
        return graph
    return load


@dataclass(frozen=True)
class Builtin:
    build: Callable[..., nx.DiGraph]
    defaults: dict[str, Any]
    description: str


BUILTINS: dict[str, Builtin] = {
    "abilene": Builtin(_data_topology("abilene"), {},
                       "Abilene (Internet2) backbone: 12 nodes, 15 links, SNDlib capacities"),
    "geant": Builtin(_data_topology("geant"), {},
                     "GEANT: 22 nodes, 36 links, 155 Mbit/s to 10 Gbit/s"),
    "nsfnet": Builtin(_data_topology("nsfnet"), {"capacity_mbps": 10000.0},
                      "NSFNET T1 backbone: 14 nodes, 21 links, uniform capacity"),
    "fat-tree": Builtin(fat_tree, {"k": 4, "capacity_mbps": DEFAULT_CAPACITY_MBPS},
                        "k-ary fat tree: k²/4 core, k²/2 aggregation, k²/2 edge switches "
                        "(hosts on edge switches)"),
    "linear": Builtin(linear, {"n": 4, "capacity_mbps": DEFAULT_CAPACITY_MBPS},
                      "chain of n switches"),
    "ring": Builtin(ring, {"n": 6, "capacity_mbps": DEFAULT_CAPACITY_MBPS},
                    "cycle of n switches"),
    "wan": Builtin(wan, {"n": 100, "edge": 20, "seed": 1,
                         "capacity_mbps": DEFAULT_CAPACITY_MBPS},
                   "seeded Waxman wide-area network, capacities by degree, traffic at the "
                   "edge nodes of lowest degree"),
}


# -- the catalog ---------------------------------------------------------------------------

def builtin_names() -> list[str]:
    """Names of the built-in topologies, in catalog order."""
    return list(BUILTINS)


def builtin_parameters(name: str) -> dict[str, Any]:
    """The parameters a built-in accepts, with their defaults, in positional order."""
    if name not in BUILTINS:
        raise TopologyError(f"{name}: not a built-in topology ({', '.join(BUILTINS)})")
    return dict(BUILTINS[name].defaults)


def describe_builtins() -> list[dict[str, Any]]:
    """One record (name, parameters with defaults, description) per built-in."""
    return [{"name": name, "parameters": dict(b.defaults), "description": b.description}
            for name, b in BUILTINS.items()]


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``"name:k=v,k2=v2"`` into the name and its (string) parameters."""
    name, _, rest = spec.partition(":")
    params: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TopologyError(f"{spec}: parameters must look like key=value, got '{item}'")
        params[key.strip()] = value.strip()
    return name, params


def load_topology(spec: str | os.PathLike[str], **params: Any) -> nx.DiGraph:
    """Load a built-in (``"fat-tree:k=4"``) or a topology file; see the module docstring.

    Raises TopologyError naming the built-in or the file and the problem.
    """
    text = str(spec)
    if text in BUILTINS:
        return _load_builtin(text, params)
    if Path(text).is_file():
        return read_topology_file(text, **params)
    name, spec_params = parse_spec(text)
    merged = {**spec_params, **params}
    if name in BUILTINS:
        return _load_builtin(name, merged)
    if Path(name).is_file():
        return read_topology_file(name, **merged)
    if "/" in name or "." in name:
        raise TopologyError(f"{name}: no such file")
    raise TopologyError(f"{text}: unknown topology; built-ins are {', '.join(BUILTINS)}, "
                        "or give a .json, .xml, .graphml or .graph file")


def _load_builtin(name: str, params: dict[str, Any]) -> nx.DiGraph:
    defaults = BUILTINS[name].defaults
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        accepted = ", ".join(defaults) or "none"
        raise TopologyError(f"{name}: unknown parameter(s) {', '.join(unknown)} "
                            f"(accepted: {accepted})")
    values = {key: _coerce(name, key, value, defaults[key]) for key, value in params.items()}
    return BUILTINS[name].build(**values)


def _coerce(name: str, key: str, value: Any, default: Any) -> Any:
    """Give a parameter (possibly a string from a spec) the type of its default."""
    kind = type(default)
    number = None
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            pass
    if number is None or (kind is int and not number.is_integer()):
        raise TopologyError(f"{name}: parameter {key} must be {kind.__name__}, got {value!r}")
    return kind(number)


# -- views ---------------------------------------------------------------------------------

def physical_links(graph: nx.DiGraph) -> list[tuple[str, str]]:
    """One (u, v) per physical link, in the graph's edge order (first direction seen)."""
    seen: set[frozenset[str]] = set()
    links = []
    for u, v in graph.edges():
        if frozenset((u, v)) not in seen:
            seen.add(frozenset((u, v)))
            links.append((u, v))
    return links


def topology_summary(graph: nx.DiGraph) -> dict[str, Any]:
    """A JSON-ready description: name, counts, nodes (with dpid) and directed links."""
    nodes = [{"name": node, "dpid": attrs["dpid"], "hosts": attrs.get("hosts", True),
              "pos": list(attrs["pos"]) if attrs.get("pos") else None}
             for node, attrs in graph.nodes(data=True)]
    links = [{"src": u, "dst": v, **attrs} for u, v, attrs in graph.edges(data=True)]
    return {
        "name": graph.graph.get("name", ""),
        "source": graph.graph.get("source", ""),
        "num_nodes": graph.number_of_nodes(),
        "num_links": graph.number_of_edges(),
        "num_physical_links": len(physical_links(graph)),
        "total_capacity_mbps": sum(c for _, _, c in graph.edges(data="capacity_mbps")),
        "nodes": nodes,
        "links": links,
    }
