"""Fixtures shared by the unit tests."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ring_model(tmp_path_factory):
    """A tiny agent trained here on a synthetic series of ring:n=5 (seconds, not minutes)."""
    from agents.model_file import save_model
    from agents.train import TrainConfig, Trainer
    from topologies.catalog import load_topology
    from topologies.traffic import synthetic_traffic

    graph = load_topology("ring:n=5")
    series = synthetic_traffic(graph, steps=288, seed=3, load=0.5)
    config = TrainConfig(history=4, hidden=(32,), epochs=2, batch_size=16, augment=0.0,
                         validation="48", test="48", timesteps=0)
    trainer = Trainer(graph, series, config, cache_dir=tmp_path_factory.mktemp("optima"))
    path = tmp_path_factory.mktemp("models") / "ring5.zip"
    save_model(path, trainer.fit(), trainer.metadata("ring5"))
    return path
