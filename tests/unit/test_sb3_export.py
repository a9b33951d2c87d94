"""A policy trained with stock stable-baselines3 on ryute/TE-v0 becomes a model file that
``--model`` deploys (agents.sb3.save_sb3_model)."""
import gymnasium as gym
import pytest
from stable_baselines3 import PPO

import sim  # noqa: F401 - registers ryute/TE-v0
from agents.agent import PathNet
from agents.model_file import load_agent
from agents.sb3 import save_sb3_model, split_net_policy
from sim.paths import PathSet
from sim.state import NetworkState
from topologies.catalog import load_topology
from topologies.traffic import synthetic_traffic


def make_env():
    return gym.make("ryute/TE-v0", topology="ring:n=5", traffic="synthetic:steps=200",
                    history=3, episode_length=8)


def test_a_stock_sb3_ppo_run_with_ryutes_policy_class_is_deployable(tmp_path):
    env = make_env()
    net = PathNet(env.unwrapped.encoding, hidden=8, rounds=1)
    model = PPO(split_net_policy(net), env, n_steps=32, batch_size=16, n_epochs=1, gamma=0.0,
                policy_kwargs={"net_arch": {"pi": [], "vf": [16]}}, seed=0, device="cpu")
    model.learn(32)
    path = save_sb3_model(model, env, tmp_path / "ring.zip")
    graph = load_topology("ring:n=5")
    agent = load_agent(path, PathSet.from_graph(graph, k=4), "ring:n=5")
    assert agent.metadata["training"]["method"] == "stable-baselines3 PPO on ryute/TE-v0"
    state = NetworkState(graph, agent.path_set)
    for m in synthetic_traffic(graph, steps=4, seed=2).tm:
        state.push_matrix(m)
    assert agent.decide(state).validate(state.down_links) == []


def test_a_stock_mlp_policy_is_refused_in_one_line(tmp_path):
    env = make_env()
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=16, device="cpu")
    with pytest.raises(ValueError, match="the PPO policy is not ryute's"):
        save_sb3_model(model, env, tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
