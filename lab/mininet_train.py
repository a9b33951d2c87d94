"""``ryute train --env mininet``: validate, and fine-tune, a simulation-trained agent on Open
vSwitch in Mininet.

1. One testbed for the whole run: the controller in ``external`` mode with a fresh API token,
   the topology in Mininet (:class:`lab.mininet_env.MininetTEEnv` does the rest through the
   controller's API).
2. **Validation**: the model decides ``validation`` consecutive intervals from ``start``; per
   interval the measured ratio (measured MLU / optimal MLU) and the fluid model's prediction
   for the same decision, so the sim-to-emulation gap of this model is on record.
3. With ``timesteps`` > 0, **PPO** (the fluid stage's hyper-parameters, :func:`agents.sb3.ppo_in_env`)
   in the Mininet environment on the intervals before ``start`` (never the validation ones),
   then validation again. The fine-tuned network is kept only when its mean measured ratio is
   lower; the model file written to ``out`` records both validations (``metadata["mininet"]``).

The traffic is scaled so that the fallback's predicted MLU of the busiest interval used (training
or validation) is :data:`lab.replay.MLU_TARGET` (0.85): no interval saturates a link, which would
cap the measured MLU at 1 and hide differences.
"""
from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.agent import AgentPolicy
from agents.baselines import fallback_policy
from agents.model_file import load_agent, save_model
from controller.auth import new_api_token
from lab.config import CAPACITY_SCALE, poll_interval_for
from lab.config import default_start as lab_default_start
from lab.replay import DEFAULT_FLOWS, MLU_TARGET
from sim.loads import mlu
from sim.paths import PathSet
from topologies.catalog import load_topology

log = logging.getLogger(__name__)


@dataclass
class MininetTrainConfig:
    """A ``ryute train --env mininet`` run (stored in the model file and the report)."""

    interval_s: float = 4.0  # seconds each matrix is replayed
    validation: int = 8  # intervals decided and measured from ``start``
    start: int | None = None  # first validation interval (default: see :func:`default_start`)
    episode_length: int = 8  # PPO episodes, in intervals before ``start``
    timesteps: int = 0  # PPO steps (one step = one replayed interval)
    ppo_lr: float = 1e-5
    ppo_log_std: float = -3.0
    seed: int = 0
    flows: int = DEFAULT_FLOWS  # per OD pair: the SELECT groups' hashing follows the weights
    capacity_scale: float = CAPACITY_SCALE


def default_start(traffic: str, n: int, history: int) -> int:
    """The lab's first replayed matrix (:func:`lab.config.default_start`: synthetic 120, as the
    demo; a file: the start of its last 20 %), after at least ``history`` + 1 matrices."""
    return max(lab_default_start(traffic, n), history + 1)


def train_in_mininet(topology: str, traffic: str, model: str, out: Path,
                     config: MininetTrainConfig, run_dir: Path) -> dict[str, Any]:
    """Validate (and with ``config.timesteps`` fine-tune) ``model`` in Mininet; writes ``out``
    and ``out`` with ``.json`` (the report); returns the report."""
    from lab.mininet_env import MininetTEEnv
    from lab.testbed import Testbed
    from topologies.traffic import load_series

    graph = load_topology(topology)
    agent = load_agent(model, PathSet.from_graph(graph, k=4), topology)
    encoding = agent.encoding
    series = load_series(traffic, graph)
    start = config.start if config.start is not None else default_start(
        traffic, len(series), encoding.history)
    stop = start + config.validation
    if stop > len(series):
        raise ValueError(f"{series.source}: {len(series)} intervals, cannot validate "
                         f"{config.validation} from {start}")
    first_train = encoding.history if config.timesteps else start
    fallback = fallback_policy(agent.path_set).decision()
    # The busiest matrix used at the fallback's MLU_TARGET: no interval saturates a link.
    scale = MLU_TARGET / float(np.max(mlu(agent.path_set, fallback, series.tm[first_train:stop])))
    common: dict[str, Any] = {"traffic_scale": scale, "history": encoding.history,
              "scale_reference": encoding.scale_reference, "logit_scale": encoding.logit_scale,
              "interval_s": config.interval_s, "capacity_scale": config.capacity_scale,
              "flows": config.flows}
    started = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    token = new_api_token()
    report: dict[str, Any] = {"topology": topology, "traffic": series.source, "model": model,
                              "config": asdict(config), "traffic_scale": scale,
                              "validation_range": [start, stop]}
    with Testbed(topology, scale=config.capacity_scale,
                 poll_interval_s=poll_interval_for(config.interval_s),
                 controller_args=("--mode", "external"), api_token=token,
                 log_dir=run_dir, switch_prefix="v", host_prefix="w") as testbed:
        def env(interval_range: tuple[int, int], episode_length: int | None) -> MininetTEEnv:
            return MininetTEEnv(topology, series, testbed=testbed, token=token,
                                run_dir=run_dir / "steps", interval_range=interval_range,
                                episode_length=episode_length, **common)

        validation_env = env((start, stop), None)
        report["before"] = validate(agent, validation_env)
        log.info("measured in Mininet before fine-tuning: %s", _brief(report["before"]))
        kept = agent
        if config.timesteps > 0:
            from agents.sb3 import ppo_in_env

            tuned = AgentPolicy(copy.deepcopy(agent.net), encoding, agent.metadata)
            n_steps = min(config.timesteps, 4 * config.episode_length)
            ppo_in_env(tuned.net, lambda: env((first_train, start), config.episode_length),
                       config.timesteps, lr=config.ppo_lr, log_std=config.ppo_log_std,
                       seed=config.seed, n_steps=n_steps, batch_size=min(16, n_steps),
                       progress=True)
            report["after"] = validate(tuned, validation_env)
            log.info("measured in Mininet after fine-tuning: %s", _brief(report["after"]))
            if report["after"]["ratio_mean"] < report["before"]["ratio_mean"]:
                kept = tuned
        report["kept"] = "fine-tuned" if kept is not agent else "original"
    report["seconds"] = round(time.time() - started, 1)
    metadata = {**{k: v for k, v in agent.metadata.items() if k not in ("id", "path")},
                "mininet": report}
    save_model(out, kept, metadata, agent.metadata.get("network", {}).get(
        "weights_dtype", "float32"))
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    return report


def validate(agent: AgentPolicy, env) -> dict[str, Any]:
    """The agent decides every interval of ``env``'s range once (deterministic); measured and
    predicted ratios per interval."""
    observation, _ = env.reset(options={"start": int(env.decision_times[0])})
    rows, truncated = [], False
    while not truncated:
        action = agent.action(observation)
        observation, _, _, truncated, info = env.step(action)
        rows.append({key: info[key] for key in ("t", "mlu", "predicted_mlu", "optimal_mlu",
                                                 "ratio", "source", "loss", "readings",
                                                 "attempts")})
    measured = np.array([r["ratio"] for r in rows])
    predicted = np.array([r["predicted_mlu"] / r["optimal_mlu"] for r in rows])
    return {"ratio_mean": float(measured.mean()), "ratio_max": float(measured.max()),
            "predicted_ratio_mean": float(predicted.mean()),
            "installed": sum(r["source"] == "external" for r in rows), "intervals": rows}


def _brief(scores: dict[str, Any]) -> str:
    return (f"ratio mean {scores['ratio_mean']:.3f} (fluid model {scores['predicted_ratio_mean']:.3f})"
            f", {scores['installed']} of {len(scores['intervals'])} decisions installed")


