"""``ryute train``: the command line of :mod:`agents.train` (fluid simulation), kept apart so
that the ``ryute`` command starts without importing torch. The one entry point of training:
other environments (the lab's Mininet, ``--env mininet``) plug in as a :class:`TrainEnv`, given
by the layer that owns them, so that agents/ imports nothing above it."""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sim.runs import run_dir


@dataclass(frozen=True)
class TrainEnv:
    """Where ``ryute train --env NAME`` trains, besides the fluid simulation."""

    description: str  # what ``--env NAME`` does, for ``ryute train --help``
    add_options: Callable[[argparse.ArgumentParser], None]  # its own options
    run: Callable[[argparse.Namespace, dict], int]  # (arguments, --config values) -> exit code


def register(subparsers: argparse._SubParsersAction,
             envs: Mapping[str, TrainEnv] | None = None) -> None:
    """Add ``ryute train`` to the command line; ``envs``: the environments besides ``fluid``."""
    envs = dict(envs or {})
    p = subparsers.add_parser(
        "train", help="train the RL agent for a topology and write a model file",
        description="--env fluid (default): direct-gradient warm start, then PPO fine-tuning "
                    "(--timesteps), on the earlier part of a series; the later part validates, "
                    "the last part is held out." + "".join(
                        f" --env {name}: {env.description}" for name, env in envs.items()))
    p.add_argument("--topology", help="catalog name or topology file (required but with "
                                      "--generalist)")
    p.add_argument("--traffic", help="a .tm.npz series, or 'synthetic' (required but with "
                                     "--generalist)")
    p.add_argument("--generalist", action="store_true",
                   help="train the generalist over the zoo topologies of the shared data (the "
                        "shipped agents/models/generalist.zip recipe: agents.generalist); "
                        "--config takes GeneralistConfig fields")
    p.add_argument("--ray-address", help="--generalist: prepare the path sets and LP optima as "
                                         "Ray tasks: 'local' (ray.init() here) or a cluster "
                                         "address (needs ryute[cluster])")
    p.add_argument("--out", required=True, type=Path, help="model file to write (.zip)")
    p.add_argument("--env", choices=("fluid", *envs), default="fluid",
                   help="where the agent learns (default fluid)")
    p.add_argument("--timesteps", type=int, help="PPO steps (fluid: after the warm start; "
                                                 "mininet: one step is one replayed interval)")
    p.add_argument("--epochs", type=int, help="direct-gradient epochs (default: config)")
    p.add_argument("--seed", type=int, help="seed of everything random (default 0)")
    p.add_argument("--validation", help="fluid: validation intervals before the test part (N or "
                                        "P%%; default 576, 15%% of a series that the default "
                                        "576 + 576 would leave less than half of); mininet: "
                                        "intervals measured (default 8)")
    p.add_argument("--test", help="held-out intervals at the end, never read (N or P%%; 0 for "
                                  "a model trained on all data; default 576, or 20%% of a "
                                  "short series)")
    p.add_argument("--config", type=Path, help="JSON file of TrainConfig (fluid) or "
                                               "MininetTrainConfig (mininet) fields")
    p.add_argument("--log-dir", type=Path, help="metrics (and TensorBoard) directory "
                                                "(default runs/train/NAME)")
    p.add_argument("--resume", action="store_true", help="continue from NAME.ckpt if present")
    p.add_argument("--init", help="the model to start from: fluid: 'generalist' (the shipped "
                                  "generalist) or a PathNet model file, fine-tuned on this "
                                  "topology; mininet: the simulation-trained model (default: "
                                  "'default', the topology's default model)")
    for env in envs.values():
        env.add_options(p)
    p.set_defaults(func=lambda args: _run(args, envs))


def _run(args: argparse.Namespace, envs: Mapping[str, TrainEnv]) -> int:
    values = json.loads(args.config.read_text()) if args.config else {}
    if args.generalist:
        return _run_generalist(args, values)
    if args.ray_address:
        raise ValueError("--ray-address is an option of --generalist")
    for option in ("topology", "traffic"):
        if getattr(args, option) is None:
            raise ValueError(f"--{option} is required (but with --generalist)")
    if args.env in envs:
        return envs[args.env].run(args, values)
    for key in ("timesteps", "epochs", "seed", "validation", "test"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    from agents.train import FINETUNE, TrainConfig, init_shape, train  # torch: only now

    if args.init:
        values = {**FINETUNE, **init_shape(args.init), **values, "init": args.init}
    config = TrainConfig.for_topology(args.topology, **values)
    log_dir = args.log_dir or run_dir("train", args.out.stem)
    _, meta = train(args.topology, args.traffic, args.out, config, args.resume, log_dir,
                    progress=True)
    scores = meta["validation"]
    final = scores.get("ppo", scores["direct"])
    training = meta["training"]
    print(f"wrote {args.out}: validation ratio mean {final['mean']:.3f} p90 {final['p90']:.3f} "
          f"p99 {final['p99']:.3f} in {training['wall_seconds']:.0f} s (training "
          f"{training['seconds']:.0f} s, data preparation and checks the rest)")
    return 0


def _run_generalist(args: argparse.Namespace, values: dict) -> int:
    for option in ("topology", "traffic", "timesteps", "validation", "test", "resume"):
        if getattr(args, option) not in (None, False):
            raise ValueError(f"--{option} is not an option of --generalist")
    for key in ("epochs", "seed"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    from agents.generalist import GeneralistConfig, GeneralistTrainer

    trainer = GeneralistTrainer(GeneralistConfig.from_dict(values),
                                ray_address=args.ray_address)
    trainer.fit()
    trainer.save(args.out)
    print(f"wrote {args.out}: {len(trainer.train_names)} training topologies, validation "
          f"objective {trainer.scores['objective']:.4f} in {trainer.seconds:.0f} s")
    return 0

