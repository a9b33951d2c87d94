"""Detours for local repair (sim.detours): every hop of every path that can be detoured is,
each detour is a real way to the destination that avoids the failed link, and the best come
first."""
from __future__ import annotations

from itertools import pairwise

import networkx as nx
import numpy as np
import pytest

from sim.detours import detours
from sim.paths import PathSet
from topologies.catalog import load_topology


def suffix(path_set: PathSet, detour, found=None) -> tuple:
    path = (found or detours(path_set)).path(path_set, detour.path_id)
    return path[detour.position:]


@pytest.mark.parametrize("spec", ["abilene", "geant", "ring:n=5", "fat-tree:k=4"])
def test_every_detour_reaches_the_destination_without_the_failed_link(spec):
    path_set = PathSet.from_graph(load_topology(spec), k=4)
    found = detours(path_set)
    assert found.by_hop
    for (x, y, d), options in found.by_hop.items():
        assert 1 <= len(options) <= 2
        assert len({option.next_hop for option in options}) == len(options)
        for option in options:
            rest = suffix(path_set, option, found)
            assert rest[0] == x and rest[-1] == d and rest[1] == option.next_hop != y
            assert option.hops == len(rest) - 1
            assert not {(x, y), (y, x)} & set(pairwise(rest))
            assert all(path_set.has_link(u, v) for u, v in pairwise(rest))


@pytest.mark.parametrize("spec, tunnel_share", [
    ("abilene", 0.05), ("geant", 0.05),
    ("fat-tree:k=4", 0.15),  # a core switch has one link into each pod
])
def test_every_hop_gets_a_detour_unless_its_link_is_the_only_way(spec, tunnel_share):
    graph = load_topology(spec)
    path_set = PathSet.from_graph(graph, k=4)
    found = detours(path_set)
    hops = {(path[i], path[i + 1], path[-1]) for path in path_set.paths
            for i in range(len(path) - 1)}
    assert set(found.by_hop) <= hops
    for x, y, d in hops - set(found.by_hop):
        cut = graph.copy()
        cut.remove_edges_from([(x, y), (y, x)])
        assert not nx.has_path(cut, x, d)
    # Tunnels only where no path of the set detours: few, and only those hops use them.
    tunnel_hops = [hop for hop, options in found.by_hop.items()
                   if options[0].path_id >= path_set.n_paths]
    assert len(found.tunnels) <= len(tunnel_hops) < len(hops) * tunnel_share
    for x, y, d in tunnel_hops:
        assert len(found.by_hop[x, y, d]) == 1
        assert not any(path[i] == x and path[i + 1] != y and path[-1] == d
                       for path in path_set.paths for i in range(len(path) - 1))
    assert len(set(found.tunnels)) == len(found.tunnels)
    assert not set(found.tunnels) & set(path_set.paths)


def test_detours_that_avoid_the_next_switch_come_first_then_the_shortest():
    #   x - y - d       the detour x-z-y-d is shortest but passes y (lost with y);
    #    \     /        x-w-v-d avoids it
    #     w - v         and x-z-y-d still serves as the second option
    #   x - z - y
    graph = nx.Graph()
    graph.add_edges_from([("x", "y"), ("y", "d"), ("x", "w"), ("w", "v"), ("v", "d"),
                          ("x", "z"), ("z", "y")])
    digraph = nx.DiGraph()
    for u, v in graph.edges:
        digraph.add_edge(u, v, capacity_mbps=10.0)
        digraph.add_edge(v, u, capacity_mbps=10.0)
    path_set = PathSet.from_graph(digraph, k=4)
    options = detours(path_set).by_hop["x", "y", "d"]
    assert [suffix(path_set, option) for option in options] == [
        ("x", "w", "v", "d"), ("x", "z", "y", "d")]
    assert detours(path_set, limit=1).by_hop["x", "y", "d"] == options[:1]


def test_a_tunnel_where_the_path_set_has_no_detour_avoiding_the_next_switch_if_it_can():
    #   x - y - d          with one path per OD pair (k=1, all min-hop), x's only way to d
    #   |   |   |          is x-y-d: the tunnel avoids y (x-a-b-c-d, not the shorter x-a-y-d)
    #   a --+   |          and a tunnel to y, where y is the destination, goes x-a-y
    #   |       |
    #   b - - - c
    digraph = nx.DiGraph()
    for u, v in [("x", "y"), ("y", "d"), ("x", "a"), ("a", "y"), ("a", "b"), ("b", "c"),
                 ("c", "d")]:
        digraph.add_edge(u, v, capacity_mbps=10.0)
        digraph.add_edge(v, u, capacity_mbps=10.0)
    path_set = PathSet.from_graph(digraph, k=1)
    assert path_set.paths[path_set.paths_of(("x", "d"))[0]] == ("x", "y", "d")
    found = detours(path_set)
    (option,) = found.by_hop["x", "y", "d"]
    assert option.path_id >= path_set.n_paths
    assert found.path(path_set, option.path_id) == ("x", "a", "b", "c", "d")
    assert found.path(path_set, found.by_hop["x", "y", "y"][0].path_id) == ("x", "a", "y")
    # Only the links given carry tunnels: without (a, b) the tunnel has to pass y.
    links = [link for link in path_set.edges if set(link) != {"a", "b"}]
    limited = detours(path_set, links=links)
    assert limited.path(path_set, limited.by_hop["x", "y", "d"][0].path_id) == (
        "x", "a", "y", "d")


def test_only_usable_paths_carry_detours_and_the_result_is_deterministic():
    path_set = PathSet.from_graph(load_topology("abilene"), k=4)
    usable = np.arange(path_set.n_paths) % 2 == 0
    found = detours(path_set, usable)
    assert all(option.path_id >= path_set.n_paths or usable[option.path_id]
               for options in found.by_hop.values() for option in options)
    assert all(any(usable[p] and path_set.paths[p][i:i + 2] == (x, y)
                   and path_set.paths[p][-1] == d
                   for p in range(path_set.n_paths) for i in range(len(path_set.paths[p])))
               for x, y, d in list(found.by_hop)[:50])  # a hop is one of a usable path
    again = detours(PathSet.from_graph(load_topology("abilene"), k=4), usable)
    assert again == found and list(again.by_hop) == list(found.by_hop)


def test_bad_arguments_are_refused():
    path_set = PathSet.from_graph(load_topology("ring:n=4"), k=2)
    with pytest.raises(ValueError, match="limit must be >= 1"):
        detours(path_set, limit=0)
    with pytest.raises(ValueError, match="usable has shape"):
        detours(path_set, np.ones(3, bool))
