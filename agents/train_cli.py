"""``ryute train``: the command line of :mod:`agents.train` (fluid simulation) and
:mod:`lab.mininet_train` (``--env mininet``), kept apart so that the ``ryute`` command
starts without importing torch."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ryute train`` to the command line."""
    p = subparsers.add_parser(
        "train", help="train the RL agent for a topology and write a model file",
        description="--env fluid (default): direct-gradient warm start, then PPO fine-tuning "
                    "(--timesteps), on the earlier part of a series; the later part validates, "
                    "the last part is held out. --env mininet: validate a trained model (--init) "
                    "on Open vSwitch in Mininet, measured MLU per interval, and with "
                    "--timesteps fine-tune it there with PPO (needs root).")
    p.add_argument("--topology", required=True, help="catalog name or topology file")
    p.add_argument("--traffic", required=True, help="a .tm.npz series, or 'synthetic'")
    p.add_argument("--out", required=True, type=Path, help="model file to write (.zip)")
    p.add_argument("--env", choices=("fluid", "mininet"), default="fluid",
                   help="where the agent learns (default fluid)")
    p.add_argument("--timesteps", type=int, help="PPO steps (fluid: after the warm start; "
                                                 "mininet: one step is one replayed interval)")
    p.add_argument("--epochs", type=int, help="direct-gradient epochs (default: config)")
    p.add_argument("--seed", type=int, help="seed of everything random (default 0)")
    p.add_argument("--validation", help="fluid: validation intervals before the test part (N or "
                                        "P%%); mininet: intervals measured (default 8)")
    p.add_argument("--test", help="held-out intervals at the end, never read (N or P%%; 0 for "
                                  "a model trained on all data)")
    p.add_argument("--config", type=Path, help="JSON file of TrainConfig (fluid) or "
                                               "MininetTrainConfig (mininet) fields")
    p.add_argument("--log-dir", type=Path, help="metrics (and TensorBoard) directory "
                                                "(default runs/train/NAME)")
    p.add_argument("--resume", action="store_true", help="continue from NAME.ckpt if present")
    mininet = p.add_argument_group("--env mininet")
    mininet.add_argument("--init", default="default",
                         help="the simulation-trained model to start from (default: the "
                              "shipped model of the topology)")
    mininet.add_argument("--interval", type=float, help="seconds each matrix is replayed (4)")
    mininet.add_argument("--start", type=int, help="first validation interval (synthetic: 120; "
                                                   "a file: the start of its last 20%%)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    values = json.loads(args.config.read_text()) if args.config else {}
    if args.env == "mininet":
        return _run_mininet(args, values)
    for key in ("timesteps", "epochs", "seed", "validation", "test"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    from agents.train import TrainConfig, train  # torch: only when training

    config = TrainConfig.for_topology(args.topology, **values)
    log_dir = args.log_dir or Path("runs") / "train" / args.out.stem
    _, meta = train(args.topology, args.traffic, args.out, config, args.resume, log_dir,
                    progress=True)
    scores = meta["validation"]
    final = scores.get("ppo", scores["direct"])
    print(f"wrote {args.out}: validation ratio mean {final['mean']:.3f} p90 {final['p90']:.3f} "
          f"p99 {final['p99']:.3f} in {meta['training']['seconds']:.0f} s")
    return 0


def _run_mininet(args: argparse.Namespace, values: dict) -> int:
    from dataclasses import fields

    from lab.mininet_train import MininetTrainConfig, train_in_mininet

    for option in ("epochs", "test", "resume"):
        if getattr(args, option) not in (None, False):
            raise ValueError(f"--{option} is an option of --env fluid only")
    for key, option in (("timesteps", "timesteps"), ("seed", "seed"), ("interval_s", "interval"),
                        ("start", "start"), ("validation", "validation")):
        if getattr(args, option) is not None:
            values[key] = getattr(args, option)
    if "validation" in values:
        values["validation"] = int(values["validation"])
    known = {f.name for f in fields(MininetTrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for --env mininet; known: "
                         f"{', '.join(sorted(known))}")
    config = MininetTrainConfig(**values)
    run_dir = args.log_dir or Path("runs") / "train" / args.out.stem
    report = train_in_mininet(args.topology, args.traffic, args.init, args.out, config, run_dir)
    for stage in ("before", "after"):
        if stage in report:
            s = report[stage]
            print(f"{stage} fine-tuning: measured ratio mean {s['ratio_mean']:.3f} (fluid model "
                  f"{s['predicted_ratio_mean']:.3f}), {s['installed']} of "
                  f"{len(s['intervals'])} decisions installed")
    print(f"wrote {args.out} ({report['kept']} network) and {args.out.with_suffix('.json')} "
          f"in {report['seconds']:.0f} s")
    return 0
