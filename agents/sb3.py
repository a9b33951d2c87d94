"""PPO fine-tuning of the agent's network with stable-baselines3 in ``ryute/TE-v0`` (training only).

The SB3 policy is a stock :class:`~stable_baselines3.common.policies.ActorCriticPolicy` whose
Gaussian mean is the agent's network itself (:class:`~agents.agent.SplitNet` or
:class:`~agents.agent.PathNet`; its parameters are trained in place) and whose value function is a
small MLP of its own. After PPO the same network is the deterministic decision-time policy:
nothing from SB3 is needed to serve it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import networkx as nx
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from agents.agent import PathNet, SplitNet
from topologies.traffic import TrafficSeries

log = logging.getLogger(__name__)


class _Mean(nn.Module):
    """Latent (the raw observation, SB3's pi branch is empty) -> the network's action mean."""

    def __init__(self, net: SplitNet | PathNet):
        super().__init__()
        self.net = net

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net(latent)


def split_net_policy(net: SplitNet | PathNet) -> type[ActorCriticPolicy]:
    """An ActorCriticPolicy class whose action mean is ``net`` (SB3 builds policies from a class,
    and ``_build`` runs inside ``__init__``, hence the class made per network)."""

    class SplitNetPolicy(ActorCriticPolicy):
        def _build(self, lr_schedule) -> None:
            super()._build(lr_schedule)
            self.action_net = _Mean(net)  # replaces SB3's linear head, after its orthogonal init
            # SB3 types optimizer_class as the base Optimizer, whose __init__ takes no lr
            self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),  # type: ignore[call-arg]
                                                  **self.optimizer_kwargs)

    return SplitNetPolicy


class _Progress(BaseCallback):
    def __init__(self, total: int, enabled: bool):
        super().__init__()
        self.total, self.enabled, self.bar = total, enabled, None

    def _on_training_start(self) -> None:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc="PPO", unit="step", disable=None)

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


def ppo_finetune(net: SplitNet | PathNet, graph: nx.DiGraph, series: TrafficSeries, timesteps: int, *,
                 interval_range: tuple[int, int], history: int, paths_k: int, path_method: str,
                 scale_reference: float, logit_scale: float, cache_dir: Path | None, lr: float,
                 log_std: float, seed: int, log_dir: Path | None = None,
                 progress: bool = False) -> None:
    """Fine-tune ``net`` in place with PPO in the fluid environment of ``graph`` and ``series``,
    on the intervals ``interval_range`` (the training range; the environment's encoding must be
    the network's: ``history``, ``paths_k``, ``path_method``, ``scale_reference``,
    ``logit_scale``)."""
    from sim.env import TEEnv

    def make_env() -> TEEnv:
        return TEEnv(graph, series, history=history, paths_k=paths_k, path_method=path_method,
                     episode_length=64, interval_range=interval_range,
                     scale_reference=scale_reference, logit_scale=logit_scale, cache_dir=cache_dir)

    ppo_in_env(net, make_env, timesteps, lr=lr, log_std=log_std, seed=seed, log_dir=log_dir,
               progress=progress)


def ppo_in_env(net: SplitNet | PathNet, make_env: Callable[[], gym.Env], timesteps: int, *, lr: float,
               log_std: float, seed: int, n_steps: int = 256, batch_size: int = 64,
               n_epochs: int = 5, log_dir: Path | None = None, progress: bool = False) -> None:
    """Fine-tune ``net`` in place with PPO in the environment ``make_env()`` builds (the fluid
    one, or the Mininet-backed one of ``ryute train --env mininet``). ``gamma = 0``: a decision
    only affects the next reward."""
    env = DummyVecEnv([make_env])
    env.seed(seed)
    tensorboard = None
    if log_dir is not None:
        try:
            import tensorboard as _  # noqa: F401

            tensorboard = str(log_dir)
        except ImportError:
            pass
    model = PPO(
        split_net_policy(net), env, learning_rate=lr, n_steps=n_steps, batch_size=batch_size,
        n_epochs=n_epochs, gamma=0.0, gae_lambda=1.0, clip_range=0.1, ent_coef=0.0, seed=seed,
        policy_kwargs={"net_arch": {"pi": [], "vf": [64, 64]}, "log_std_init": log_std,
                       "ortho_init": True},
        tensorboard_log=tensorboard, device="cpu", verbose=0,
    )
    net.train()
    try:
        model.learn(timesteps, callback=_Progress(timesteps, progress))
    finally:
        net.eval()
        env.close()
    log.info("PPO: %d steps done", timesteps)


def save_sb3_model(model: PPO, env: gym.Env, path: str | Path, topology: str = "") -> Path:
    """Write a policy trained with stock SB3 on ``ryute/TE-v0`` as a ryute model file, which
    ``--model`` then deploys (controller, ``ryute evaluate``, ``ryute emulate``).

    The policy must be the project's own class, ``split_net_policy(net)`` with ``net`` a
    :class:`~agents.agent.PathNet` or :class:`~agents.agent.SplitNet` built on the
    environment's encoding: the controller serves that network alone, so a stock
    ``"MlpPolicy"`` (whose mean comes from SB3's own layers) cannot be taken over and is
    refused with ``ValueError``. ``env`` is the training environment (its encoding and path
    set go into the file)."""
    from agents.agent import AgentPolicy
    from agents.model_file import save_model

    head = getattr(model.policy, "action_net", None)
    if not isinstance(head, _Mean):
        raise ValueError("the PPO policy is not ryute's: train with "
                         "PPO(split_net_policy(PathNet(env.encoding)), env, ...) so that its "
                         "action mean is a network the controller can serve")
    encoding = getattr(env.unwrapped, "encoding", None)
    if encoding is None or model.action_space.shape != (encoding.n_actions,):
        raise ValueError("env is not a ryute TE environment with the policy's action space")
    name = topology or str(getattr(env.unwrapped, "graph").graph.get("name", ""))
    metadata = {"topology": {"name": name},
                "training": {"method": "stable-baselines3 PPO on ryute/TE-v0",
                             "timesteps": int(model.num_timesteps)}}
    head.net.eval()
    return save_model(path, AgentPolicy(head.net, encoding), metadata)
