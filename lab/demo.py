"""``ryute demo`` (``make demo``): the main job on the embedded default.

Abilene in Mininet (Open vSwitch userspace switches, capacities scaled 1000:1) with the ryute
controller and the shipped model; synthetic traffic from the project's generator, scaled so the
fallback's MLU sits in [0.5, 0.9], replayed twice: once in shadow mode (the fallback routes, the
agent only decides beside it) and once in active mode (the agent routes while healthy). It
prints per interval and per phase the measured MLU, both policies' predictions, loss and the
sim-to-emulation fidelity, then the comparison, and where the plot and the JSON are.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.runs import runs_root


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="shadow then active on Abilene in Mininet with the shipped model (make demo)")
    parser.add_argument("--topology", default="abilene", help="catalog name or file (default abilene)")
    parser.add_argument("--interval", type=float, default=10.0,
                        help="seconds per replayed matrix (default 10)")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="replayed seconds per phase (default 60)")
    parser.add_argument("--keep", type=float, default=None, metavar="SECONDS",
                        help="keep the network, the controller and its dashboard up this long "
                             "at the end (default 180 in a terminal, 0 otherwise)")
    parser.add_argument("--out-dir", type=Path, default=runs_root() / "demo",
                        help="where the JSON and the plot go (default runs/demo, see sim.runs)")
    parser.set_defaults(func=run)


def keep_seconds(keep: float | None) -> float:
    """``--keep``, else a few minutes for someone at a terminal and none for a script or CI."""
    if keep is not None:
        if keep < 0:
            raise ValueError(f"--keep must be >= 0 seconds, got {keep:g}")
        return keep
    return 180.0 if sys.stdin.isatty() and sys.stdout.isatty() else 0.0


def run(args: argparse.Namespace) -> int:
    from lab.emulate import EmulationConfig, run_emulation
    from lab.testbed import TestbedError

    args.out_dir.mkdir(parents=True, exist_ok=True)
    run_dir = args.out_dir / "run"
    config = EmulationConfig(
        topology=args.topology, traffic="synthetic", interval_s=args.interval,
        duration_s=args.duration, model="default", phases=("shadow", "active"),
        mtu=9000,  # jumbo frames: the userspace datapath's cost is per packet
        json_out=args.out_dir / "demo.json", plot_out=args.out_dir / "mlu.png",
        run_dir=run_dir, keep_s=keep_seconds(args.keep))
    try:
        run_emulation(config)
    except TestbedError as error:
        print(f"ryute demo: error: {error}", file=sys.stderr)
        return 2
    print("\nWhile it runs, the controller's live status is at the REST URL printed above "
          "(the dashboard at its `/`, `ryute status --url URL`, `/metrics` for Prometheus). "
          "Every decision of both "
          f"phases: {run_dir / 'decisions.jsonl'} "
          f"(`ryute shadow-report {run_dir / 'decisions.jsonl'} --plot shadow.png`).")
    return 0
