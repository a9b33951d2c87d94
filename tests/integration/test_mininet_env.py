"""The Mininet-backed TE environment and ``ryute train --env mininet`` on real Open vSwitch.

A ring of five switches; every step installs a decision through the controller's API (external
mode, token), replays one matrix as UDP flows and reads the MLU from the switches' port counters.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from gymnasium.utils.passive_env_checker import env_reset_passive_checker, env_step_passive_checker

from agents.baselines import shortest_path_decision
from agents.model_file import load_agent
from lab.cli import main as ryute
from lab.mininet_env import MininetTEEnv
from lab.testbed import PROJECT_DIR, ovs_bridges
from sim.env import TEEnv
from sim.loads import mlu
from sim.paths import PathSet
from topologies.catalog import load_topology

TOPOLOGY = "ring:n=5"
TRAFFIC = "synthetic:steps=96,seed=3,load=0.5"
RUNS = PROJECT_DIR / "runs" / "tests" / f"mininet-env-{os.getpid()}"
CAPACITY_SCALE = 100
"""10 Mbit/s ring links: enough datagrams per OD pair in a 2 s interval for the hashing to
realize a split (at 1 Mbit/s, 38 per interval: an equal split measured up to 20 % off on a
link, see lab.replay.MIN_SPLIT_SAMPLES)."""
FIDELITY = 0.10
"""Measured MLU within 10 % of the fluid model's prediction for the same decision (128 flows per
OD pair realize fractional splits by hashing; the emulation benchmark reports the median)."""


@pytest.fixture(scope="module")
def menv():
    with MininetTEEnv(TOPOLOGY, TRAFFIC, interval_s=2.0, capacity_scale=CAPACITY_SCALE,
                      episode_length=3, history=4, flows=128, run_dir=RUNS / "env",
                      switch_prefix="g", host_prefix="k") as env:
        yield env
    assert not {b for b in ovs_bridges() if b.startswith("g")}, "the environment left bridges"


def installed_weights(env: MininetTEEnv) -> np.ndarray:
    weights = np.zeros(env.path_set.n_paths)
    for pair in env.testbed.api.paths()["od_pairs"]:
        for path in pair["paths"]:
            weights[path["id"]] = path["weight"]
    return weights


def test_same_spaces_as_the_fluid_environment_and_every_step_is_measured(menv, measure):
    fluid = TEEnv(TOPOLOGY, menv.series, episode_length=3, history=4)
    assert menv.observation_space == fluid.observation_space
    assert menv.action_space == fluid.action_space
    observation, info = env_reset_passive_checker(menv, seed=0)
    assert observation in menv.observation_space
    rng = np.random.default_rng(0)
    for step in range(3):
        action = rng.uniform(-1, 1, menv.action_space.shape).astype(np.float32)
        observation, reward, terminated, truncated, info = env_step_passive_checker(menv, action)
        # the decision is on the switches' controller, not the fallback
        assert info["source"] == "external" and info["reasons"] == []
        np.testing.assert_allclose(installed_weights(menv), menv.encoding.weights(action),
                                   atol=1e-6)
        assert info["readings"] >= 1 and info["loss"] is not None and info["loss"] < 0.01
        assert reward == pytest.approx(-info["mlu"] / info["optimal_mlu"])
        error = abs(info["mlu"] - info["predicted_mlu"]) / info["predicted_mlu"]
        assert error < FIDELITY, info
        # the next observation carries the measured utilization
        utilization = observation[menv.encoding.layout["utilization"]]
        assert utilization.max() == pytest.approx(info["mlu"], rel=0.05)
        assert info["link_loads"].max() / menv.path_set.capacities.max() == pytest.approx(
            info["mlu"], rel=0.05)
        assert not terminated and truncated == (step == 2)
        measure(f"step {step} measured / predicted MLU",
                [round(info["mlu"], 4), round(info["predicted_mlu"], 4)])


def test_the_measured_reward_follows_the_action(menv, measure):
    """Shortest candidate only vs. an equal split over all candidates, on the matrix where the
    fluid model tells them apart most: the measurement must agree on which is better."""
    encoding = menv.encoding
    shortest = encoding.action(shortest_path_decision(menv.path_set, "hops"))
    equal = np.zeros(encoding.n_actions, np.float32)
    actions = {"shortest": shortest, "equal": equal}
    times = menv.decision_times
    predicted = {name: mlu(menv.path_set, encoding.weights(action), menv.series.tm[times])
                 for name, action in actions.items()}
    gap = np.abs(predicted["shortest"] - predicted["equal"])
    gap[np.maximum(predicted["shortest"], predicted["equal"]) > 0.95] = 0  # no saturation
    t = int(times[np.argmax(gap)])
    results = {}
    for name, action in actions.items():
        menv.reset(options={"start": t})
        _, reward, _, _, info = menv.step(action)
        results[name] = (info["mlu"], info["predicted_mlu"])
    measure(f"interval {t}, shortest vs equal: measured, predicted", results)
    (m_short, p_short), (m_equal, p_equal) = results["shortest"], results["equal"]
    assert abs(p_short - p_equal) / max(p_short, p_equal) > 0.1, "no matrix tells them apart"
    assert (m_short < m_equal) == (p_short < p_equal)
    for measured, predicted in results.values():  # a split is realized as well as a single path
        assert abs(measured - predicted) / predicted < FIDELITY


def test_train_env_mininet_validates_and_fine_tunes_a_model(ring_model, tmp_path, measure):
    out, config = tmp_path / "ring5-mininet.zip", tmp_path / "config.json"
    config.write_text(json.dumps({"capacity_scale": CAPACITY_SCALE}))
    code = ryute(["train", "--env", "mininet", "--topology", TOPOLOGY, "--traffic", "synthetic",
                  "--init", str(ring_model), "--out", str(out), "--timesteps", "4",
                  "--validation", "3", "--interval", "2", "--config", str(config),
                  "--log-dir", str(RUNS / "train")])
    assert code == 0
    report = json.loads(out.with_suffix(".json").read_text())
    agent = load_agent(out, PathSet.from_graph(load_topology(TOPOLOGY), k=4), TOPOLOGY)
    assert agent.metadata["mininet"]["before"] == report["before"]
    assert report["kept"] in ("original", "fine-tuned")
    for stage in ("before", "after"):
        rows = report[stage]["intervals"]
        assert [row["t"] for row in rows] == [120, 121, 122]
        for row in rows:
            assert row["source"] == "external" and row["loss"] < 0.01 and row["attempts"] >= 1
            assert abs(row["mlu"] - row["predicted_mlu"]) / row["predicted_mlu"] < FIDELITY
    # no interval saturates: the fallback's busiest predicted MLU was scaled to 0.85
    assert max(row["mlu"] for row in report["before"]["intervals"]) < 1.0
    measure("measured ratio before / after fine-tuning",
            [report["before"]["ratio_mean"], report["after"]["ratio_mean"]])
    assert not {b for b in ovs_bridges() if b.startswith("v")}, "the run left bridges"
