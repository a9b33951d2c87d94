"""Baselines (sp, invcap, ecmp, lp_last) as Policy objects over NetworkState."""

import networkx as nx
import numpy as np
import pytest

from agents.baselines import (
    BASELINES,
    LpLastPolicy,
    fallback_policy,
    make_policy,
    shortest_path_decision,
)
from sim.loads import mlu
from sim.optimal import path_optimal
from sim.paths import PathSet
from sim.policy import Policy
from sim.state import NetworkState


def net():
    #   a - b - d  (10 Mbit/s)      a - c - d (10 Mbit/s)      a - e - f - d (100 Mbit/s)
    g = nx.DiGraph()
    g.add_nodes_from("abcdef")
    for u, v, c in [("a", "b", 10), ("b", "d", 10), ("a", "c", 10), ("c", "d", 10),
                    ("a", "e", 100), ("e", "f", 100), ("f", "d", 100)]:
        g.add_edge(u, v, capacity_mbps=float(c))
        g.add_edge(v, u, capacity_mbps=float(c))
    return g


@pytest.fixture
def ps():
    return PathSet.from_graph(net(), k=2)


def state_of(ps, *matrices, down=(), graph=None):
    st = NetworkState(graph or net(), ps)
    for m in matrices:
        st.push_matrix(m)
    for u, v in down:
        st.set_link_up(u, v, False)
    return st


def used(ps, decision, od):
    r = ps.paths_of(od)
    return {ps.paths[p]: round(float(decision.weights[p]), 9)
            for p in range(r.start, r.stop) if decision.weights[p] > 0}


def test_sp_invcap_ecmp_pick_the_expected_paths(ps):
    st = state_of(ps)
    assert used(ps, make_policy("sp", ps).decide(st), ("a", "d")) == {("a", "b", "d"): 1.0}
    assert used(ps, make_policy("ecmp", ps).decide(st), ("a", "d")) == {
        ("a", "b", "d"): 0.5, ("a", "c", "d"): 0.5}
    assert used(ps, make_policy("invcap", ps).decide(st), ("a", "d")) == {("a", "e", "f", "d"): 1.0}
    # b -> c: two equal invcap paths (b-a-c and b-d-c, cost 20 each); ties split only on request
    assert used(ps, make_policy("invcap", ps).decide(st), ("b", "c")) == {("b", "a", "c"): 1.0}
    assert used(ps, make_policy("invcap", ps, ecmp_ties=True).decide(st), ("b", "c")) == {
        ("b", "a", "c"): 0.5, ("b", "d", "c"): 0.5}


def test_shortest_paths_are_recomputed_around_down_links():
    ps = PathSet.from_graph(net(), k=3)  # k=3 keeps a live path for every OD pair
    st = state_of(ps, down=[("a", "b"), ("a", "e")])
    for name in ("sp", "ecmp", "invcap"):
        d = make_policy(name, ps).decide(st)
        assert d.validate(st.down_links) == [], name
        assert used(ps, d, ("a", "d")) == {("a", "c", "d"): 1.0}, name


def test_no_live_path_raises(ps):
    with pytest.raises(ValueError, match="no live path in the path set for OD a->b"):
        shortest_path_decision(ps, "hops", down_links=[("a", "b"), ("c", "d"), ("e", "f")])


def test_the_fallback_is_invcap_with_ecmp_ties_and_keeps_stranded_pairs_routed(ps):
    fallback = fallback_policy(ps)
    assert fallback.name == "invcap"
    assert used(ps, fallback.decision(), ("b", "c")) == {("b", "a", "c"): 0.5, ("b", "d", "c"): 0.5}
    assert used(ps, fallback.decide(state_of(ps)), ("a", "d")) == {("a", "e", "f", "d"): 1.0}
    # a -> b has no live path left: the controller's fallback keeps its no-failure route
    down = [("a", "b"), ("c", "d"), ("e", "f")]
    assert used(ps, fallback.decision(down), ("a", "b")) == used(ps, fallback.decision(), ("a", "b"))
    with pytest.raises(ValueError, match="no live path in the path set for OD a->b"):
        fallback_policy(ps, strict=True).decision(down)


def test_lp_last_without_usable_history_is_invcap(ps):
    invcap = make_policy("invcap", ps)
    lp = make_policy("lp_last", ps)
    for st in (state_of(ps), state_of(ps, np.zeros((6, 6)))):
        np.testing.assert_array_equal(lp.decide(st).weights, invcap.decide(st).weights)


def test_lp_last_is_the_path_optimum_of_the_previous_matrix(ps):
    rng = np.random.default_rng(5)
    old, last = rng.random((6, 6)) * 5, rng.random((6, 6)) * 5
    d = make_policy("lp_last", ps).decide(state_of(ps, old, last))
    u, _ = path_optimal(ps, last)
    assert mlu(ps, d, last) == pytest.approx(u, rel=1e-6)
    assert mlu(ps, d, last) < mlu(ps, make_policy("sp", ps).decide(state_of(ps)), last)


def test_lp_last_idle_ods_follow_the_fallback_and_avoid_down_links(ps):
    last = np.zeros((6, 6))
    last[0, 3] = 30.0  # only a -> d has demand
    st = state_of(ps, last, down=[("a", "e")])
    d = make_policy("lp_last", ps).decide(st)
    assert d.validate(st.down_links) == []
    assert used(ps, d, ("d", "a")) == {("d", "f", "e", "a"): 1.0}  # invcap for an idle OD pair
    assert mlu(ps, d, last) == pytest.approx(1.5)  # 30 Mbit/s over the two 10 Mbit/s paths


def test_lp_last_uses_any_live_path_when_all_candidates_are_down():
    g = net()
    for v in "bcef":
        g.nodes[v]["hosts"] = False  # OD pairs a -> d and d -> a only
    ps = PathSet.from_graph(g, k=2)
    # a -> d candidates are a-b-d and a-c-d; with both down only the (extra) detour remains
    last = np.zeros((6, 6))
    last[0, 3] = 30.0
    st = state_of(ps, last, down=[("a", "b"), ("a", "c")], graph=g)
    d = LpLastPolicy(ps).decide(st)
    assert used(ps, d, ("a", "d")) == {("a", "e", "f", "d"): 1.0}


def test_registry_and_protocol(ps):
    assert set(BASELINES) == {"sp", "invcap", "ecmp", "lp_last", "lp_pred"}
    for name in BASELINES:
        policy = make_policy(name, ps)
        assert isinstance(policy, Policy) and policy.name == name
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        make_policy("magic", ps)
    with pytest.raises(ValueError, match="built for path set"):
        make_policy("sp", ps).decide(state_of(PathSet.from_graph(net(), k=3)))


# ---------------------------------------------------------------------- NetworkState
def test_state_keeps_graph_and_vectors_in_step(ps):
    st = state_of(ps)
    assert st.down_links == set() and st.last_matrix is None and st.mlu == 0.0
    st.set_loads(np.arange(ps.n_links, dtype=float), at=12.5)
    ab = ps.link_index("a", "b")
    assert st.graph.edges["a", "b"]["load_mbps"] == ab and st.updated_at == 12.5
    assert st.utilization[ab] == pytest.approx(ab / 10)
    st.set_link_up("a", "b", False)
    assert ("a", "b") in st.down_links and st.graph.edges["a", "b"]["up"] is False
    assert not st.live_graph().has_edge("a", "b") and st.graph.has_edge("a", "b")
    assert not st.live_paths[ps.paths_of(("a", "b"))[0]]
    st.set_link_up("a", "b", True)
    assert st.down_links == set()
    with pytest.raises(KeyError):
        st.set_link_up("a", "d", False)


def test_state_history_is_bounded_newest_last(ps):
    st = NetworkState(net(), ps, history_len=2)
    for x in (1.0, 2.0, 3.0):
        st.push_matrix(np.full((6, 6), x))
    assert [m[0, 1] for m in st.history] == [2.0, 3.0] and st.last_matrix[0, 1] == 3.0
    with pytest.raises(ValueError, match="shape"):
        st.push_matrix(np.zeros((5, 5)))


def test_state_reads_link_state_from_the_graph_and_checks_it(ps):
    g = net()
    g.edges["c", "d"]["up"] = False
    g.edges["c", "d"]["load_mbps"] = 4.0
    st = NetworkState(g, ps)
    assert st.down_links == {("c", "d")}
    assert st.loads_mbps[ps.link_index("c", "d")] == 4.0
    g.remove_edge("c", "d")
    with pytest.raises(ValueError, match="edges differ"):
        NetworkState(g, ps)


def test_linear_trend_extends_a_linear_series_and_skips_missing_matrices():
    from agents.baselines import linear_trend

    base, step = np.full((3, 3), 10.0), np.array([[0, 1, -1], [2, 0, 0], [0.5, 0, 0]])
    history = [base + t * step for t in range(5)]
    history.insert(2, np.zeros((3, 3)))  # a missing measurement is not a point of the line
    np.testing.assert_allclose(linear_trend(history), base + 5 * step)
    falling = [np.full((2, 2), 3.0 - t) for t in range(4)]
    assert (linear_trend(falling) == 0).all()  # clipped at zero, never negative demand
    assert linear_trend([base]) is base and linear_trend([]) is None


def test_lp_pred_is_the_path_optimum_of_the_trend(ps):
    rng = np.random.default_rng(7)
    start, slope = rng.random((6, 6)) * 5 + 1, rng.random((6, 6))
    history = [start + t * slope for t in range(6)]
    d = make_policy("lp_pred", ps).decide(state_of(ps, *history))
    ahead = start + 6 * slope
    u, _ = path_optimal(ps, ahead)
    assert mlu(ps, d, ahead) == pytest.approx(u, rel=1e-6)
    last = make_policy("lp_last", ps).decide(state_of(ps, *history))
    assert mlu(ps, d, ahead) <= mlu(ps, last, ahead) + 1e-9
