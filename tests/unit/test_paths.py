"""PathSet: candidate paths, tie rule, stable ids, incidence and lookups."""

from dataclasses import FrozenInstanceError
from itertools import pairwise

import networkx as nx
import numpy as np
import pytest

from sim.paths import PathSet


def graph(links, nodes=None, both=True):
    """DiGraph from (u, v, capacity) triples; both directions unless both=False."""
    g = nx.DiGraph()
    g.add_nodes_from(nodes or [])
    for u, v, c in links:
        g.add_edge(u, v, capacity_mbps=float(c))
        if both:
            g.add_edge(v, u, capacity_mbps=float(c))
    return g


def square():
    #   a - b
    #   |   |
    #   c - d      plus a long, fat detour a - e - f - d
    return graph([("a", "b", 10), ("b", "d", 10), ("a", "c", 10), ("c", "d", 10),
                  ("a", "e", 100), ("e", "f", 100), ("f", "d", 100)],
                 nodes=["a", "b", "c", "d", "e", "f"])


def test_od_pairs_cover_ordered_host_pairs_in_node_order():
    ps = PathSet.from_graph(square(), k=2)
    assert ps.od_pairs[:3] == (("a", "b"), ("a", "c"), ("a", "d"))
    assert ps.n_ods == 6 * 5
    assert all(ps.paths[p][0] == s and ps.paths[p][-1] == d
               for i, (s, d) in enumerate(ps.od_pairs) for p in ps.paths_of(i))


def test_k_shortest_by_hops_breaks_ties_by_node_position():
    ps = PathSet.from_graph(square(), k=2, method="hops")
    r = ps.paths_of(("a", "d"))
    cands = [ps.paths[p] for p in r if ps.candidate[p]]
    assert cands == [("a", "b", "d"), ("a", "c", "d")]
    # the invcap shortest path (fat detour) is kept, as a non-candidate extra after the candidates
    assert [ps.paths[p] for p in r if not ps.candidate[p]] == [("a", "e", "f", "d")]
    assert list(ps.candidate[r.start:r.stop]) == [True, True, False]


def test_node_order_decides_ties_but_link_insertion_order_does_not():
    g = square()
    shuffled = nx.DiGraph()
    shuffled.add_nodes_from(g.nodes)
    edges = list(g.edges(data=True))
    for i in np.random.default_rng(1).permutation(len(edges)):
        shuffled.add_edge(*edges[i][:2], **edges[i][2])
    a, b = PathSet.from_graph(g, k=3), PathSet.from_graph(shuffled, k=3)
    assert a.paths == b.paths and a.fingerprint() == b.fingerprint() and a == b

    flipped = nx.DiGraph()
    flipped.add_nodes_from(["a", "c", "b", "d", "e", "f"])
    flipped.add_edges_from(g.edges(data=True))
    ps = PathSet.from_graph(flipped, k=1)
    assert ps.paths[ps.paths_of(("a", "d"))[0]] == ("a", "c", "d")


def test_ids_are_a_pure_function_of_graph_k_and_method():
    g = square()
    assert PathSet.from_graph(g, 2).fingerprint() == PathSet.from_graph(g.copy(), 2).fingerprint()
    assert PathSet.from_graph(g, 2).fingerprint() != PathSet.from_graph(g, 3).fingerprint()
    assert PathSet.from_graph(g, 2).fingerprint() != PathSet.from_graph(g, 2, "invcap").fingerprint()
    g2 = g.copy()
    g2.edges["a", "b"]["capacity_mbps"] = 11.0
    assert PathSet.from_graph(g2, 2).fingerprint() != PathSet.from_graph(g, 2).fingerprint()


def test_invcap_candidates_rank_by_inverse_capacity():
    ps = PathSet.from_graph(square(), k=2, method="invcap")
    r = ps.paths_of(("a", "d"))
    # costs: detour 3 * (100/100) = 3; each 2-hop path 2 * (100/10) = 20
    assert [ps.paths[p] for p in r] == [("a", "e", "f", "d"), ("a", "b", "d"), ("a", "c", "d")]
    assert list(ps.candidate[r.start:r.stop]) == [True, True, False]  # the min-hop tie joins as extra
    np.testing.assert_allclose(ps.cost("invcap")[r.start:r.stop], [3, 20, 20])
    np.testing.assert_allclose(ps.cost("hops")[r.start:r.stop], [3, 2, 2])


def test_equal_cost_paths_beyond_k_are_kept_as_extras():
    ps = PathSet.from_graph(square(), k=1, method="hops")
    r = ps.paths_of(("a", "d"))
    assert [ps.paths[p] for p in r] == [("a", "b", "d"), ("a", "e", "f", "d"), ("a", "c", "d")]
    assert list(ps.candidate[r.start:r.stop]) == [True, False, False]


def test_disjoint_paths_share_no_directed_link():
    g = graph([("a", "b", 10), ("b", "d", 10), ("a", "c", 10), ("c", "d", 10), ("b", "c", 10)])
    ps = PathSet.from_graph(g, k=3, method="disjoint")
    r = ps.paths_of(("a", "d"))
    cands = [ps.paths[p] for p in r if ps.candidate[p]]
    assert cands == [("a", "b", "d"), ("a", "c", "d")]  # only two disjoint ways out of a
    links = [set(pairwise(p)) for p in cands]
    assert not links[0] & links[1]


def test_incidence_matches_paths():
    ps = PathSet.from_graph(square(), k=3)
    inc = ps.incidence.toarray()
    assert inc.shape == (ps.n_paths, ps.n_links)
    for p in range(ps.n_paths):
        assert {ps.edges[j] for j in np.flatnonzero(inc[p])} == set(ps.links_of(p))
    assert np.all(np.diff(ps.path_od) >= 0)  # paths grouped by OD pair
    assert ps.od_ptr[-1] == ps.n_paths


def test_links_sorted_by_node_position_and_lookups():
    ps = PathSet.from_graph(square(), k=1)
    pos = [(ps.node_index(u), ps.node_index(v)) for u, v in ps.edges]
    assert pos == sorted(pos)
    assert ps.edges[ps.link_index("c", "d")] == ("c", "d")
    assert ps.od_pairs[ps.od_index("d", "a")] == ("d", "a")
    with pytest.raises(KeyError, match="no link"):
        ps.link_index("a", "d")
    with pytest.raises(KeyError, match="no OD pair"):
        ps.od_index("a", "a")


def test_nodes_without_hosts_are_transit_only():
    g = graph([("a", "x", 10), ("x", "b", 10)], nodes=["a", "x", "b"])
    g.nodes["x"]["hosts"] = False
    ps = PathSet.from_graph(g, k=2)
    assert ps.od_pairs == (("a", "b"), ("b", "a"))
    assert ps.paths == (("a", "x", "b"), ("b", "x", "a"))


def test_live_paths():
    ps = PathSet.from_graph(square(), k=3)
    live = ps.live_paths([("a", "b")])
    assert not any(live[p] for p in range(ps.n_paths) if ("a", "b") in ps.links_of(p))
    assert live.sum() == ps.n_paths - sum(("a", "b") in ps.links_of(p) for p in range(ps.n_paths))
    assert ps.live_paths().all() and ps.live_paths([("a", "zz")]).all()  # unknown: no path uses it
    assert ps.link_mask([("a", "b")]).sum() == 1
    with pytest.raises(KeyError):
        ps.link_mask([("a", "f")])


def test_bad_graphs_are_rejected():
    with pytest.raises(ValueError, match="no path"):
        PathSet.from_graph(graph([("a", "b", 10)], nodes=["a", "b", "c"]))
    g = graph([("a", "b", 10)])
    g.edges["a", "b"]["capacity_mbps"] = 0
    with pytest.raises(ValueError, match="capacity"):
        PathSet.from_graph(g)
    with pytest.raises(ValueError, match="method"):
        PathSet.from_graph(square(), method="random")
    with pytest.raises(ValueError, match="k must"):
        PathSet.from_graph(square(), k=0)


def test_immutable():
    ps = PathSet.from_graph(square(), k=2)
    with pytest.raises(FrozenInstanceError):
        ps.k = 3
    with pytest.raises(ValueError):
        ps.capacities[0] = 1.0
    with pytest.raises(ValueError):
        ps.candidate[0] = False


def test_explicit_paths_roundtrip_and_validation():
    ps = PathSet.from_graph(square(), k=2)
    again = PathSet(ps.nodes, ps.edges, ps.capacities, ps.paths, ps.candidate, ps.k, ps.method)
    assert again == ps
    with pytest.raises(ValueError, match="not a link"):
        PathSet(ps.nodes, ps.edges, ps.capacities, (("a", "d"),), [True], 1, "hops")
    with pytest.raises(ValueError, match="contiguous"):
        PathSet(ps.nodes, ps.edges, ps.capacities,
                (("a", "b"), ("b", "a"), ("a", "c", "d", "b")), [True] * 3, 1, "hops")
