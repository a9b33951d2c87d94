"""``ryute train --env mininet``: the options and the run of :mod:`lab.mininet_train`, plugged
into the one ``ryute train`` of :mod:`agents.train_cli` (kept apart so that the ``ryute``
command starts without importing torch)."""
from __future__ import annotations

import argparse

from agents.train_cli import TrainEnv
from sim import runs


def _add_options(p: argparse.ArgumentParser) -> None:
    mininet = p.add_argument_group("--env mininet")
    mininet.add_argument("--interval", type=float, help="seconds each matrix is replayed (4)")
    mininet.add_argument("--start", type=int, help="first validation interval (synthetic: 120; "
                                                   "a file: the start of its last 20%%)")


def _run(args: argparse.Namespace, values: dict) -> int:
    from dataclasses import fields

    from lab.mininet_train import MininetTrainConfig, train_in_mininet  # torch: only when training

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
    run_dir = args.log_dir or runs.run_dir("train", args.out.stem)
    report = train_in_mininet(args.topology, args.traffic, args.init or "default", args.out, config, run_dir)
    for stage in ("before", "after"):
        if stage in report:
            s = report[stage]
            print(f"{stage} fine-tuning: measured ratio mean {s['ratio_mean']:.3f} (fluid model "
                  f"{s['predicted_ratio_mean']:.3f}), {s['installed']} of "
                  f"{len(s['intervals'])} decisions installed")
    print(f"wrote {args.out} ({report['kept']} network) and {args.out.with_suffix('.json')} "
          f"in {report['seconds']:.0f} s")
    return 0


MININET = TrainEnv(
    description="validate a trained model (--init) on Open vSwitch in Mininet, measured MLU per "
                "interval, and with --timesteps fine-tune it there with PPO (needs root).",
    add_options=_add_options, run=_run)
