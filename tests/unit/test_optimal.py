"""The LP oracle against optima known by hand and against independent formulations."""

from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from scipy.optimize import linprog

from sim.loads import mlu
from sim.optimal import optimal_mlu, optimal_series, path_optimal
from sim.paths import PathSet

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def graph(links, nodes=None):
    g = nx.DiGraph()
    g.add_nodes_from(nodes or [])
    for u, v, c in links:
        g.add_edge(u, v, capacity_mbps=float(c))
        g.add_edge(v, u, capacity_mbps=float(c))
    return g


def matrix(g, demands):
    nodes = list(g.nodes)
    m = np.zeros((len(nodes), len(nodes)))
    for (s, d), x in demands.items():
        m[nodes.index(s), nodes.index(d)] = x
    return m


def random_case(seed, n=6, extra=4):
    """A connected random graph with random capacities and a random dense matrix."""
    rng = np.random.default_rng(seed)
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    links = [(i, int(rng.integers(i))) for i in range(1, n)]  # a random tree ...
    while len(links) < n - 1 + extra:  # ... plus a few chords
        u, v = (int(x) for x in rng.choice(n, 2, replace=False))
        if (u, v) not in links and (v, u) not in links:
            links.append((u, v))
    for u, v in links:
        c = float(rng.choice([10.0, 40.0, 100.0]))
        g.add_edge(u, v, capacity_mbps=c)
        g.add_edge(v, u, capacity_mbps=c)
    m = rng.random((n, n)) * 20 * (rng.random((n, n)) < 0.7)
    np.fill_diagonal(m, 0)
    return g, m


def per_od_edge_lp(g, m):
    """Independent formulation: one commodity per OD pair, dense constraints, no scaling."""
    nodes, edges = list(g.nodes), list(g.edges)
    ods = [(s, d) for s in range(len(nodes)) for d in range(len(nodes)) if m[s, d] > 0]
    n_var = len(ods) * len(edges) + 1
    a_eq, b_eq = [], []
    for k, (s, d) in enumerate(ods):
        for i, v in enumerate(nodes):
            row = np.zeros(n_var)
            for j, (a, b) in enumerate(edges):
                row[k * len(edges) + j] = (a == v) - (b == v)
            a_eq.append(row)
            b_eq.append(m[s, d] if i == s else -m[s, d] if i == d else 0.0)
    a_ub = np.zeros((len(edges), n_var))
    for j, (a, b) in enumerate(edges):
        a_ub[j, j:len(ods) * len(edges):len(edges)] = 1.0
        a_ub[j, -1] = -g.edges[a, b]["capacity_mbps"]
    c = np.zeros(n_var)
    c[-1] = 1
    res = linprog(c, A_ub=a_ub, b_ub=np.zeros(len(edges)), A_eq=np.array(a_eq), b_eq=b_eq,
                  method="highs-ipm")
    assert res.status == 0
    return res.fun


def test_two_parallel_paths_split_by_capacity():
    # s -> t direct (10) or through m (30, 30): 20 Mbit/s is best split 1:3, MLU 0.5
    g = graph([("s", "t", 10), ("s", "m", 30), ("m", "t", 30)])
    m = matrix(g, {("s", "t"): 20})
    assert optimal_mlu(g, m) == pytest.approx(0.5, rel=1e-9)
    ps = PathSet.from_graph(g, k=2)
    u, d = path_optimal(ps, m)
    assert u == pytest.approx(0.5, rel=1e-9)
    np.testing.assert_allclose(d.od_weights(("s", "t")), [0.25, 0.75], atol=1e-9)
    assert mlu(ps, d, m) == pytest.approx(0.5, rel=1e-9)


def test_triangle_and_down_link():
    g = graph([("a", "b", 10), ("b", "c", 10), ("a", "c", 10)])
    m = matrix(g, {("a", "b"): 15, ("c", "b"): 5})
    # a->b 15 and c->b 5 both want link c->b: a->b sends x via c; MLU = max((15-x)/10, (x+5)/10)
    assert optimal_mlu(g, m) == pytest.approx(1.0, rel=1e-9)
    assert optimal_mlu(g, m, down_links=[("a", "b")]) == pytest.approx(2.0, rel=1e-9)
    ps = PathSet.from_graph(g, k=1)  # one candidate: the direct path
    assert path_optimal(ps, m)[0] == pytest.approx(1.5, rel=1e-9)
    assert path_optimal(ps, m, candidates_only=False)[0] == pytest.approx(1.5, rel=1e-9)
    assert path_optimal(PathSet.from_graph(g, k=2), m)[0] == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_matches_independent_per_od_lp(seed):
    g, m = random_case(seed)
    expected = per_od_edge_lp(g, m)
    assert optimal_mlu(g, m) == pytest.approx(expected, rel=1e-6)
    # with every simple path as a candidate, the path LP reaches the same optimum
    ps = PathSet.from_graph(g, k=1000)
    u, d = path_optimal(ps, m)
    assert u == pytest.approx(expected, rel=1e-6)
    assert mlu(ps, d, m) == pytest.approx(expected, rel=1e-6)


def test_single_commodity_matches_max_flow():
    g, _ = random_case(11, n=7, extra=5)
    nodes = list(g.nodes)
    for s, t in [(0, 6), (3, 1)]:
        m = np.zeros((7, 7))
        m[s, t] = 37.0
        cut = nx.maximum_flow_value(g, nodes[s], nodes[t], capacity="capacity_mbps")
        assert optimal_mlu(g, m) == pytest.approx(37.0 / cut, rel=1e-6)


def test_zero_matrix_and_unroutable_demand():
    g = graph([("a", "b", 10), ("b", "c", 10)])
    assert optimal_mlu(g, np.zeros((3, 3))) == 0.0
    m = matrix(g, {("a", "c"): 1})
    with pytest.raises(ValueError, match="'a' -> 'c' has no live path"):
        optimal_mlu(g, m, down_links=[("b", "c")])
    ps = PathSet.from_graph(g, k=1)
    with pytest.raises(ValueError, match="no usable path: a->c"):
        path_optimal(ps, m, down_links=[("b", "c")])
    u, d = path_optimal(ps, np.zeros((3, 3)))
    assert u == 0.0 and d.validate() == []
    with pytest.raises(ValueError, match="non-negative"):
        optimal_mlu(g, -m)


def test_path_optimal_avoids_down_links_and_fills_idle_ods():
    g = graph([("a", "b", 10), ("b", "c", 10), ("a", "c", 10)])
    ps = PathSet.from_graph(g, k=2)
    down = [("a", "c"), ("c", "a")]
    u, d = path_optimal(ps, matrix(g, {("a", "c"): 5}), down_links=down)
    assert u == pytest.approx(0.5) and d.validate(down) == []
    np.testing.assert_allclose(d.od_weights(("c", "a")), [0, 1])  # idle: first live path


def test_series_skips_zero_matrices_and_caches(tmp_path, monkeypatch):
    g, m = random_case(2)
    tms = np.stack([m, np.zeros_like(m), 2 * m])
    first = optimal_series(g, tms, cache_dir=tmp_path)
    assert np.isnan(first[1])
    np.testing.assert_allclose(first[[0, 2]], [optimal_mlu(g, m), 2 * optimal_mlu(g, m)], rtol=1e-9)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    def boom(*a, **k):
        raise AssertionError("solved again instead of using the cache")

    monkeypatch.setattr("sim.optimal.optimal_mlu", boom)
    np.testing.assert_array_equal(optimal_series(g, tms, cache_dir=tmp_path), first)
    # another formulation (path set) has its own cache entries
    ps = PathSet.from_graph(g, k=1000)
    np.testing.assert_allclose(optimal_series(ps, tms, cache_dir=tmp_path), first, rtol=1e-6)
    assert len(list(tmp_path.glob("*.npz"))) == 2


@pytest.mark.skipif(not (DATA / "traffic").is_dir(), reason="shared data folder ../shared/data absent")
def test_abilene_k4_min_hop_paths_reach_the_all_paths_optimum():
    import json

    topo = json.loads((DATA / "topologies" / "abilene.json").read_text())
    g = nx.DiGraph()
    g.add_nodes_from(topo["nodes"])
    for link in topo["links"]:
        g.add_edge(link["src"], link["dst"], capacity_mbps=link["capacity_mbps"])
    series = np.load(DATA / "traffic" / "abilene-20040301-20040314.tm.npz")
    assert list(series["nodes"]) == topo["nodes"]
    ps = PathSet.from_graph(g, k=4)
    for m in series["tm"][-3:].astype(np.float64):
        assert path_optimal(ps, m)[0] == pytest.approx(optimal_mlu(g, m), rel=1e-6)


def test_demands_below_the_solvers_tolerance_still_get_a_valid_split():
    """Issue 12's 'invalid decision' on a 161-node network: gravity traffic there has OD pairs
    a billion times smaller than the largest link; the LP left them without any flow."""
    from agents.baselines import make_policy
    from sim.state import NetworkState
    from topologies.catalog import load_topology

    graph = load_topology("abilene")
    ps = PathSet.from_graph(graph, k=4)
    tm = np.full((ps.n_nodes, ps.n_nodes), 1e-9)
    np.fill_diagonal(tm, 0.0)
    tm[0, 5], tm[3, 7] = 5000.0, 8000.0
    u, decision = path_optimal(ps, tm)
    assert decision.validate() == [] and u > 0
    state = NetworkState(graph, ps)
    state.push_matrix(tm)
    for name in ("lp_last", "lp_pred"):
        assert make_policy(name, ps).decide(state).validate() == []
