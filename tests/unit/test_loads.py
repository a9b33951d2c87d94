"""Fluid model: link loads and MLU, hand-computed on small graphs, single and batched."""

import networkx as nx
import numpy as np
import pytest

from sim.decision import Decision
from sim.loads import link_loads, mlu, od_demands, path_flows, utilization
from sim.paths import PathSet


@pytest.fixture
def ps():
    # triangle a, b, c; a-b 10 Mbit/s, b-c and a-c 20 Mbit/s (both directions)
    g = nx.DiGraph()
    g.add_nodes_from("abc")
    for u, v, c in [("a", "b", 10), ("b", "c", 20), ("a", "c", 20)]:
        g.add_edge(u, v, capacity_mbps=float(c))
        g.add_edge(v, u, capacity_mbps=float(c))
    return PathSet.from_graph(g, k=2)


def split(ps, shares):
    """Decision with {(s, d): weights over paths_of((s, d))}, the rest on the direct path."""
    return Decision.from_od_weights(ps, {od: shares.get(od, [1, 0]) for od in ps.od_pairs})


def tm(**demands):
    m = np.zeros((3, 3))
    for key, x in demands.items():
        m["abc".index(key[0]), "abc".index(key[1])] = x
    return m


def load_of(ps, loads, u, v):
    return loads[ps.link_index(u, v)]


def test_hand_computed_loads(ps):
    # a->b 6 split 2/3 direct, 1/3 via c; c->b 4 direct; b->a 5 via c
    d = split(ps, {("a", "b"): [2, 1], ("b", "a"): [0, 1]})
    loads = link_loads(ps, d, tm(ab=6, cb=4, ba=5))
    expect = {("a", "b"): 4, ("a", "c"): 2, ("c", "b"): 2 + 4, ("b", "c"): 5, ("c", "a"): 5,
              ("b", "a"): 0}
    for (u, v), x in expect.items():
        assert load_of(ps, loads, u, v) == pytest.approx(x), (u, v)
    # utilizations: a->b 0.4, c->b 0.3, b->c 0.25, c->a 0.25, a->c 0.1
    np.testing.assert_allclose(utilization(ps, loads).max(), 0.4)
    assert mlu(ps, d, tm(ab=6, cb=4, ba=5)) == pytest.approx(0.4)


def test_diagonal_is_ignored_and_matrix_shape_checked(ps):
    d = Decision.uniform(ps)
    assert mlu(ps, d, np.diag([5.0, 5.0, 5.0])) == 0.0
    with pytest.raises(ValueError, match="shape"):
        link_loads(ps, d, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="shape"):
        link_loads(ps, np.ones(ps.n_paths + 1), tm(ab=1))


def test_od_demands_and_path_flows(ps):
    m = tm(ab=6, cb=4)
    dem = od_demands(ps, m)
    assert dem[ps.od_index("a", "b")] == 6 and dem[ps.od_index("c", "b")] == 4 and dem.sum() == 10
    flows = path_flows(ps, split(ps, {("a", "b"): [1, 3]}), m)
    r = ps.paths_of(("a", "b"))
    np.testing.assert_allclose(flows[r.start:r.stop], [1.5, 4.5])


def test_batch_equals_one_at_a_time(ps):
    rng = np.random.default_rng(7)
    w = rng.random((5, ps.n_paths))
    w /= np.add.reduceat(w, ps.od_ptr[:-1], axis=1)[:, ps.path_od]
    tms = rng.random((5, 3, 3)) * 10
    batch = link_loads(ps, w, tms)
    assert batch.shape == (5, ps.n_links)
    for b in range(5):
        np.testing.assert_allclose(batch[b], link_loads(ps, w[b], tms[b]))
    np.testing.assert_allclose(mlu(ps, w, tms), [mlu(ps, w[b], tms[b]) for b in range(5)])
    # one decision against many matrices, many decisions against one matrix
    np.testing.assert_allclose(link_loads(ps, w[0], tms), [link_loads(ps, w[0], m) for m in tms])
    np.testing.assert_allclose(link_loads(ps, w, tms[0]), [link_loads(ps, x, tms[0]) for x in w])
    with pytest.raises(ValueError, match="batch sizes differ"):
        link_loads(ps, w[:2], tms)


def test_load_is_conserved(ps):
    # every unit of demand crosses as many links as its path has hops
    rng = np.random.default_rng(3)
    d = Decision(ps, rng.random(ps.n_paths))
    m = rng.random((3, 3)) * 10
    hops = np.asarray(ps.incidence.sum(axis=1)).ravel()
    assert link_loads(ps, d, m).sum() == pytest.approx((path_flows(ps, d, m) * hops).sum())
