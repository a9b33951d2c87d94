"""Decision: normalization, validation messages, masking of down links, constructors."""

import networkx as nx
import numpy as np
import pytest

from sim.decision import Decision, normalize_weights, weight_problems
from sim.paths import PathSet


def triangle_paths(k=2):
    g = nx.DiGraph()
    for u, v in [("a", "b"), ("b", "c"), ("a", "c")]:
        g.add_edge(u, v, capacity_mbps=10.0)
        g.add_edge(v, u, capacity_mbps=10.0)
    return PathSet.from_graph(g, k=k)  # every OD pair: direct path, then the two-hop one


@pytest.fixture
def ps():
    return triangle_paths()


def test_weights_are_normalized_per_od(ps):
    w = np.arange(1, ps.n_paths + 1, dtype=float)
    d = Decision(ps, w)
    np.testing.assert_allclose(np.add.reduceat(d.weights, ps.od_ptr[:-1]), 1.0)
    np.testing.assert_allclose(d.od_weights(("a", "b")), [1 / 3, 2 / 3])
    assert d.validate() == []
    with pytest.raises(ValueError):
        d.weights[0] = 0.5  # read-only


def test_normalize_weights_batches(ps):
    w = np.random.default_rng(0).random((3, ps.n_paths))
    n = normalize_weights(ps, w)
    np.testing.assert_allclose(n[1], Decision(ps, w[1]).weights)


@pytest.mark.parametrize("bad, message", [
    (np.nan, "path 0 of OD a->b (od 0) has non-finite weight nan"),
    (np.inf, "non-finite"),
    (-0.5, "path 0 of OD a->b (od 0) has negative weight -0.5"),
])
def test_invalid_entries_name_the_path_and_od(ps, bad, message):
    w = np.ones(ps.n_paths)
    w[0] = bad
    with pytest.raises(ValueError, match="invalid decision") as e:
        Decision(ps, w)
    assert message in str(e.value)


def test_all_zero_od_is_named(ps):
    w = np.ones(ps.n_paths)
    r = ps.paths_of(("c", "a"))
    w[r.start:r.stop] = 0
    with pytest.raises(ValueError, match=r"OD c->a \(od \d\) has no positive weight"):
        Decision(ps, w)


def test_many_problems_are_summarized(ps):
    problems = weight_problems(ps, np.zeros(ps.n_paths))
    assert len(problems) == 6 and problems[-1] == "... and 1 more"  # 6 OD pairs, 5 listed


def test_wrong_shape(ps):
    assert "shape" in weight_problems(ps, np.ones(ps.n_paths + 1))[0]
    with pytest.raises(ValueError, match="shape"):
        Decision(ps, np.ones((2, ps.n_paths)))


def test_validate_flags_weight_on_down_links(ps):
    d = Decision.uniform(ps)
    problems = d.validate(down_links=[("a", "b")])
    # paths a->b, a->b->c and c->a->b use a->b
    assert len(problems) == 3
    assert all("uses down link a->b" in p for p in problems)
    assert d.validate(down_links=[]) == []


def test_masked_moves_weight_onto_live_paths(ps):
    w = np.zeros(ps.n_paths)
    for od in range(ps.n_ods):
        r = ps.paths_of(od)
        w[r.start:r.stop] = [0.75, 0.25]
    d = Decision(ps, w).masked([("a", "b")])
    assert d.validate([("a", "b")]) == []
    np.testing.assert_allclose(d.od_weights(("a", "b")), [0, 1])  # orphan: all on the detour
    np.testing.assert_allclose(d.od_weights(("b", "a")), [0.75, 0.25])  # untouched
    untouched = Decision(ps, w)
    assert untouched.masked([]) is untouched


def test_masked_orphan_splits_equally_over_live_paths():
    g = nx.DiGraph()
    for u, v in [("a", "b"), ("b", "c"), ("a", "c"), ("a", "d"), ("d", "c")]:
        g.add_edge(u, v, capacity_mbps=10.0)
        g.add_edge(v, u, capacity_mbps=10.0)
    ps = PathSet.from_graph(g, k=3)
    r = ps.paths_of(("a", "c"))
    w = np.ones(ps.n_paths)
    w[r.start:r.stop] = [1, 0, 0]  # all on the direct path
    d = Decision(ps, w).masked([("a", "c")])
    np.testing.assert_allclose(d.od_weights(("a", "c")), [0, 0.5, 0.5])


def test_masked_raises_when_an_od_has_no_live_path(ps):
    with pytest.raises(ValueError, match="no live path for OD a->b"):
        Decision.uniform(ps).masked([("a", "b"), ("c", "b")])


def test_from_od_weights(ps):
    d = Decision.from_od_weights(ps, {od: [1.0, 3.0] for od in ps.od_pairs})
    np.testing.assert_allclose(d.od_weights(("b", "c")), [0.25, 0.75])
    with pytest.raises(ValueError, match="no weights for OD pairs a->b"):
        Decision.from_od_weights(ps, {})
    with pytest.raises(ValueError, match="OD a->b has 2 paths"):
        Decision.from_od_weights(ps, {od: [1.0] for od in ps.od_pairs})


def test_single_path_and_uniform(ps):
    firsts = [ps.paths_of(od)[0] for od in range(ps.n_ods)]
    d = Decision.single_path(ps, firsts)
    assert d.weights[firsts].tolist() == [1.0] * ps.n_ods and d.weights.sum() == ps.n_ods
    with pytest.raises(ValueError, match="exactly one path per OD pair"):
        Decision.single_path(ps, firsts + [firsts[0] + 1])
    with pytest.raises(ValueError, match="no positive weight"):
        Decision.split(ps, firsts[1:])
    u = Decision.uniform(ps, down_links=[("a", "b")])
    np.testing.assert_allclose(u.od_weights(("a", "b")), [0, 1])
    np.testing.assert_allclose(u.od_weights(("b", "a")), [0.5, 0.5])
