"""The torch twins of the TE core agree with it on random path sets: ``decode_torch`` with
``Encoding.weights`` and ``FluidLoss.mlu`` with ``sim.loads.mlu``, on random small graphs, random
actions and random down links that leave every OD pair a live candidate (property tests)."""

import networkx as nx
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.agent import FluidLoss, decode_torch, segment_softmax
from sim.envs.encoding import Encoding
from sim.loads import mlu, od_demands
from sim.paths import PathSet

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def networks(draw):
    """(graph, path set, numpy generator): a connected graph of 3-7 nodes, both directions of
    every link with the same random capacity, k shortest paths (k = 1..3) by hops or invcap."""
    n = draw(st.integers(3, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    extra = draw(st.floats(0.0, 0.7))
    g = nx.DiGraph()
    g.add_nodes_from(f"n{i}" for i in range(n))
    links = {(i - 1, i) for i in range(1, n)}  # a spanning path keeps it connected
    links |= {(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < extra}
    for i, j in sorted(links):
        c = float(rng.choice([10.0, 40.0, 100.0, 1000.0]))
        g.add_edge(f"n{i}", f"n{j}", capacity_mbps=c)
        g.add_edge(f"n{j}", f"n{i}", capacity_mbps=c)
    method = draw(st.sampled_from(["hops", "invcap"]))
    return g, PathSet.from_graph(g, k=draw(st.integers(1, 3)), method=method), rng


def random_down_links(path_set: PathSet, rng: np.random.Generator) -> set[tuple[str, str]]:
    """Physical links (both directions) taken down one by one in random order, each only if
    every OD pair keeps a live candidate path."""
    down: set[tuple[str, str]] = set()
    physical = sorted({tuple(sorted(e)) for e in path_set.edges})
    for i in rng.permutation(len(physical))[: rng.integers(0, len(physical) + 1)]:
        u, v = physical[i]
        trial = down | {(u, v), (v, u)}
        live = path_set.live_paths(trial) & path_set.candidate
        if (np.add.reduceat(live.astype(np.int64), path_set.od_ptr[:-1]) > 0).all():
            down = trial
    return down


def random_batch(encoding: Encoding, rng: np.random.Generator, batch: int = 4):
    """Actions [B, C] (some beyond [-1, 1], to check the clipping) and matrices [B, N, N]."""
    actions = rng.uniform(-1.5, 1.5, (batch, encoding.n_actions))
    n = encoding.path_set.n_nodes
    tm = rng.exponential(20.0, (batch, n, n)) * (rng.random((batch, n, n)) < 0.8)
    return actions, tm


@SETTINGS
@given(networks(), st.floats(0.5, 8.0))
def test_decode_torch_is_encoding_weights(network, logit_scale):
    _, path_set, rng = network
    encoding = Encoding(path_set, scale_reference=100.0, logit_scale=logit_scale)
    down = random_down_links(path_set, rng)
    actions, _ = random_batch(encoding, rng)
    live = torch.as_tensor(encoding.live_candidates(down))
    got = decode_torch(encoding, torch.as_tensor(actions, dtype=torch.float64), live).numpy()
    want = encoding.weights(actions, down)
    np.testing.assert_allclose(got, want[:, encoding.candidate_ids], rtol=1e-9, atol=1e-12)
    assert (got[:, ~live.numpy()] == 0).all()  # exact zeros on dead paths, as in numpy


@SETTINGS
@given(networks())
def test_fluid_loss_is_the_core_mlu(network):
    _, path_set, rng = network
    encoding = Encoding(path_set, scale_reference=100.0)
    down = random_down_links(path_set, rng)
    actions, tm = random_batch(encoding, rng)
    weights = encoding.weights(actions, down)
    got = FluidLoss(encoding).mlu(torch.as_tensor(weights[:, encoding.candidate_ids],
                                                  dtype=torch.float32),
                                  torch.as_tensor(od_demands(path_set, tm), dtype=torch.float32))
    np.testing.assert_allclose(got.numpy(), mlu(path_set, weights, tm), rtol=1e-5, atol=1e-6)


@SETTINGS
@given(networks())
def test_the_whole_torch_chain_is_the_core_on_float32(network):
    """Action -> weights -> MLU in float32 torch (as in training) against float64 numpy."""
    _, path_set, rng = network
    encoding = Encoding(path_set, scale_reference=100.0)
    down = random_down_links(path_set, rng)
    actions, tm = random_batch(encoding, rng)
    live = torch.as_tensor(encoding.live_candidates(down))
    w = decode_torch(encoding, torch.as_tensor(actions, dtype=torch.float32), live)
    got = FluidLoss(encoding).mlu(w, torch.as_tensor(od_demands(path_set, tm), dtype=torch.float32))
    np.testing.assert_allclose(got.numpy(), mlu(path_set, encoding.weights(actions, down), tm),
                               rtol=1e-4, atol=1e-6)


def test_a_segment_without_live_entries_gets_zeros_and_finite_gradients():
    logits = torch.tensor([[0.3, -2.0, 1.0, 4.0, 0.0]], requires_grad=True)
    segment = torch.tensor([0, 0, 1, 1, 2])
    live = torch.tensor([True, False, False, False, True])  # segment 1 has no live entry
    weights = segment_softmax(logits, segment, 3, live)
    assert weights.tolist() == [[1.0, 0.0, 0.0, 0.0, 1.0]]
    (weights * torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])).sum().backward()
    assert torch.isfinite(logits.grad).all()
    # a plain -inf softmax would have made that segment (and its gradient) NaN
    z = logits.detach().masked_fill(~live, -torch.inf)[0, 2:4]
    assert torch.isnan(torch.softmax(z, 0)).all()
