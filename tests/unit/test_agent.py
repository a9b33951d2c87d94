"""The RL agent: training improves it, model files round-trip and refuse what they must, decisions
are deterministic and never use a down link."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.adapt import AdaptConfig, Adapter, AdaptivePolicy
from agents.agent import AgentPolicy
from agents.model_file import ModelFileError, load_agent, read_model, save_model
from agents.train import TrainConfig, Trainer
from sim.paths import PathSet
from sim.state import NetworkState
from topologies.catalog import load_topology
from topologies.traffic import synthetic_traffic

CONFIG = TrainConfig(history=4, hidden=(32,), epochs=4, batch_size=16, lr=3e-3, augment=0.0,
                     validation="48", test="48", timesteps=0, synthetic=0)


@pytest.fixture(scope="module", params=["mlp", "path"])
def trained(request, tmp_path_factory):
    """A trained agent of each network (SplitNet, PathNet): every test below runs on both."""
    cache = tmp_path_factory.mktemp("optima")
    graph = load_topology("ring:n=5")
    series = synthetic_traffic(graph, steps=288, seed=3, load=0.5)
    config = replace(CONFIG, network=request.param, path_hidden=16, path_rounds=2)
    trainer = Trainer(graph, series, config, cache_dir=cache)
    untrained = trainer.validate()
    agent = trainer.fit()
    path = tmp_path_factory.mktemp("models") / "ring.zip"
    save_model(path, agent, trainer.metadata("ring5"))
    return graph, series, trainer, untrained, agent, path


def _state(graph, path_set, series, t=100, history=4) -> NetworkState:
    state = NetworkState(graph.copy(), path_set, history)
    for m in series.tm[t - history:t]:
        state.push_matrix(m)
    return state


def test_training_improves_on_the_untrained_start(trained):
    _, _, trainer, untrained, _, _ = trained
    after = trainer.validate()
    assert after["mean"] < untrained["mean"] - 0.01
    assert after["mean"] >= 1.0 - 1e-4  # never below the optimum: the loss is the real MLU


def test_round_trip_decides_identically(trained):
    graph, series, _, _, agent, path = trained
    loaded = load_agent(path, agent.path_set, "ring5")
    state = _state(graph, agent.path_set, series)
    assert np.array_equal(agent.decide(state).weights, loaded.decide(state).weights)
    meta = loaded.metadata
    assert meta["topology"]["name"] == "ring5"
    assert meta["path_set"]["sha256"] == agent.path_set.fingerprint()
    assert meta["training"]["train_dates"] and meta["validation"]["direct"]["mean"] >= 1.0
    assert {"torch", "numpy", "python"} <= set(meta["versions"])


def test_decide_is_deterministic(trained):
    graph, series, _, _, agent, _ = trained
    state = _state(graph, agent.path_set, series)
    first = agent.decide(state).weights
    for _ in range(3):
        assert np.array_equal(agent.decide(state).weights, first)


def test_never_weight_on_a_down_link(trained):
    graph, series, _, _, agent, _ = trained
    ps = agent.path_set
    u, v = ps.edges[0]
    state = _state(graph, ps, series)
    state.set_link_up(u, v, False)
    state.set_link_up(v, u, False)
    decision = agent.decide(state)
    assert decision.validate(state.down_links) == []
    assert not decision.weights[~ps.live_paths(state.down_links)].any()


def test_checksum_mismatch_is_refused(trained, tmp_path):
    _, _, _, _, agent, path = trained
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "metadata.json":
                data = data.replace(b"ring5", b"ring6")
            dst.writestr(name, data)
    with pytest.raises(ModelFileError, match="checksum mismatch for metadata.json"):
        load_agent(tampered, agent.path_set)


def test_corrupt_file_is_refused(trained, tmp_path):
    _, _, _, _, agent, path = trained
    broken = tmp_path / "broken.zip"
    broken.write_bytes(path.read_bytes()[: 200])
    with pytest.raises(ModelFileError, match="corrupt"):
        load_agent(broken, agent.path_set)
    with pytest.raises(FileNotFoundError):
        load_agent(tmp_path / "absent.zip", agent.path_set)


class _Evil:
    def __reduce__(self):
        return (print, ("code ran from a model file",))


def test_pickled_objects_are_never_loaded(trained, tmp_path):
    path = trained[-1]
    evil = tmp_path / "evil.zip"
    buffer = io.BytesIO()
    torch.save({"x": _Evil()}, buffer)
    weights = buffer.getvalue()
    with zipfile.ZipFile(path) as src:
        meta = src.read("metadata.json")
    import hashlib

    manifest = {"format": "ryute-model-1", "sha256": {
        "weights.pt": hashlib.sha256(weights).hexdigest(),
        "metadata.json": hashlib.sha256(meta).hexdigest()}}
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr("metadata.json", meta)
        z.writestr("weights.pt", weights)
    with pytest.raises(ModelFileError, match="cannot decode"):
        read_model(evil)


def test_model_for_another_topology_is_refused(trained):
    _, _, _, _, _, path = trained
    other = PathSet.from_graph(load_topology("ring:n=6"))
    with pytest.raises(ModelFileError, match=r"trained for topology ring5 \(5 nodes"):
        load_agent(path, other)
    other_k = PathSet.from_graph(load_topology("ring:n=5"), k=2)
    with pytest.raises(ModelFileError, match="k=4 hops paths; this path set has k=2"):
        load_agent(path, other_k)


def test_adaptive_policy_fine_tunes_on_past_matrices_only(trained):
    graph, series, _, _, agent, path = trained
    policy = AdaptivePolicy(load_agent(path, agent.path_set), graph,
                            AdaptConfig(every=4, epochs=1, window=24, holdout=2))
    state = NetworkState(graph.copy(), agent.path_set, 4)
    for t in range(40):
        state.push_matrix(series.tm[t])
        if t >= 3:
            assert isinstance(policy.decide(state).weights, np.ndarray)
    # 37 matrices seen once each (identity tracking), rounds every 4 once enough are buffered
    assert len(policy.adapter.demands) == 28  # window + history
    assert policy.adapter.stats.rounds >= 3
    assert isinstance(policy.agent, AgentPolicy)


def test_ppo_stage_runs_and_keeps_the_better_network(tmp_path):
    pytest.importorskip("stable_baselines3")
    graph = load_topology("ring:n=4")
    series = synthetic_traffic(graph, steps=200, seed=1, load=0.5)
    config = TrainConfig(history=2, hidden=(16,), epochs=1, validation="40", test="20",
                         timesteps=256, augment=0.0, synthetic=0)
    trainer = Trainer(graph, series, config, cache_dir=tmp_path)
    trainer.fit()
    scores = trainer.stage_scores
    assert set(scores) == {"direct", "ppo"}
    kept = trainer.validate()
    assert trainer.objective(kept) <= trainer.objective(scores["direct"]) + 1e-9


def test_drift_triggers_an_early_round_and_is_reported(trained):
    graph, series, _, _, agent, path = trained
    model = load_agent(path, agent.path_set)
    span = model.metadata["observation"]["total_demand_mbps"]
    assert span["min"] <= model.encoding.scale_reference <= span["max"]
    adapter = Adapter(model, graph, AdaptConfig(every=1000, epochs=1, window=24, holdout=2))
    for t in range(20):
        assert adapter.observe(series.tm[t]) == []
    assert adapter.step() is None and adapter.stats.rounds == 0  # not due: every=1000
    reasons = adapter.observe(series.tm[20] * 100)  # 100x the demand: far beyond training
    assert reasons and "total demand" in reasons[0]
    adapter.step()
    stats = adapter.stats
    assert (stats.rounds, stats.early_rounds, stats.drift_events) == (1, 1, 1)
    assert stats.log[-1]["early"] and stats.last_drift == reasons
    # Still drifting: the same episode, no second early round.
    adapter.observe(series.tm[21] * 100)
    assert adapter.step() is None and stats.drift_events == 1 and stats.drifted_matrices == 2


def test_float16_weights_are_half_the_size_and_decide_alike(trained, tmp_path):
    graph, series, _, _, agent, path = trained
    half = save_model(tmp_path / "half.zip", agent, {"topology": {"name": "ring5"}},
                      weights_dtype="float16")
    loaded = load_agent(half, agent.path_set)
    assert loaded.metadata["network"]["weights_dtype"] == "float16"
    name, parameter = next(iter(loaded.net.named_parameters()))
    assert parameter.dtype == torch.float32
    meta, state = read_model(half)
    assert state[name].dtype == torch.float16 and state["mean"].dtype == torch.float32
    state_ = _state(graph, agent.path_set, series)
    assert np.abs(loaded.decide(state_).weights - agent.decide(state_).weights).max() < 1e-2


def test_synthetic_series_join_training_and_validation(tmp_path):
    graph = load_topology("ring:n=4")
    series = synthetic_traffic(graph, steps=120, seed=1, load=0.5)
    config = TrainConfig(history=2, hidden=(8,), epochs=1, validation="30", test="10",
                         timesteps=0, augment=0.0, synthetic=2, synthetic_steps=20,
                         synthetic_loads=(0.05, 5.0), prior="invcap", bursts=0.5)
    trainer = Trainer(graph, series, config, cache_dir=tmp_path)
    assert len(trainer.train_set) == (80 - 2) + 2 * (20 - 2)
    trainer.fit()
    assert set(trainer.stage_scores["direct"]) == {"mean", "p90", "p99", "synthetic"}
    meta = trainer.metadata("ring4")
    assert len(meta["training"]["synthetic"]["series"]) == 2
    span = meta["observation"]["total_demand_mbps"]
    # loads 0.05 and 5: totals span two decades; the reference is their geometric midpoint
    assert span["max"] / span["min"] > 50
    ref = trainer.encoding.scale_reference
    assert ref == pytest.approx((span["min"] * span["max"]) ** 0.5)


def test_train_env_mininet_refuses_bad_options_before_starting_anything(ring_model, capsys):
    from lab.cli import main

    base = ["train", "--env", "mininet", "--topology", "ring:n=5", "--traffic", "synthetic",
            "--out", "never-written.zip", "--init", str(ring_model)]
    assert main([*base, "--epochs", "3"]) == 2
    assert "--epochs is an option of --env fluid only" in capsys.readouterr().err
    # a model of another topology: refused with both names, no testbed started
    assert main([*base[:4], "abilene", *base[5:]]) == 2
    err = capsys.readouterr().err
    assert "ring" in err and "abilene" in err
    assert not Path("never-written.zip").exists()


def test_a_topology_aware_model_transfers_to_another_topology_others_are_refused(trained):
    graph, series, trainer, _, agent, path = trained
    other = load_topology("ring:n=6")
    ps = PathSet.from_graph(other, k=4)
    if trainer.config.network == "mlp":
        with pytest.raises(ModelFileError, match="trained for topology ring5"):
            load_agent(path, ps, "ring:n=6", transfer=True)
        return
    with pytest.raises(ModelFileError, match="trained for topology ring5"):
        load_agent(path, ps, "ring:n=6")  # without transfer: refused as before
    moved = load_agent(path, ps, "ring:n=6", transfer=True)
    assert moved.metadata["transferred_from"] == "ring5"
    series6 = synthetic_traffic(other, steps=32, seed=1, load=0.5)
    state = _state(other, ps, series6, t=20)
    u, v = ps.edges[0]
    state.set_link_up(u, v, False)
    state.set_link_up(v, u, False)
    decision = moved.decide(state)
    assert decision.validate(state.down_links) == []
    assert not decision.weights[~ps.live_paths(state.down_links)].any()
    # the shared weights are the trained ones, not a fresh network's
    trained_params = dict(agent.net.named_parameters())
    for name, value in moved.net.named_parameters():
        assert torch.equal(value, trained_params[name])


def test_pathnet_trend_is_lp_preds_forecast_of_the_shares():
    from agents.agent import PathNet
    from agents.baselines import linear_trend
    from sim.envs.encoding import Encoding
    from sim.paths import PathSet
    from topologies.catalog import load_topology

    ps = PathSet.from_graph(load_topology("ring:n=5"), k=2)
    net = PathNet(Encoding(ps, 1.0, history=6), hidden=8, rounds=2, trend=True)
    shares = torch.rand(3, 6, ps.n_ods, generator=torch.Generator().manual_seed(0))
    expected = [linear_trend([h.numpy().astype(np.float64) for h in b], window=6) for b in shares]
    np.testing.assert_allclose(net._forecast(shares).numpy(), np.stack(expected), atol=1e-5)
