"""The ``ryute`` command: one entry point, one subcommand per area.

Each area module exposes ``register(subparsers)``, which adds its subcommands and sets
``func`` (taking the parsed arguments, returning an exit code) on each of them. Heavy
imports (os-ken, torch) happen inside those functions, so ``ryute --help`` stays fast.
The command dispatches to every layer (topologies, agents, controller, lab), so it lives in the
top one: no layer below imports it, each only registers its own subcommands.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agents import anomalies_cli, evaluate, forecast_cli, model_cli, plan, train_cli
from controller import client, launcher, logs
from controller.cli_errors import CliError
from lab import demo, emulate, mininet_train_cli
from topologies import cli as topology_cli


def _train(subparsers: argparse._SubParsersAction) -> None:
    """``ryute train``: the fluid simulation (agents/), and Mininet (the lab's, ``--env mininet``)."""
    train_cli.register(subparsers, envs={"mininet": mininet_train_cli.MININET})


REGISTER = [topology_cli.register, evaluate.register, forecast_cli.register, plan.register,
            anomalies_cli.register, _train, model_cli.register, launcher.register,
            client.register, emulate.register, demo.register]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ryute", description="Adaptive traffic engineering for OpenFlow networks."
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: INFO)",
    )
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="text, or one JSON object per line (default: text)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in REGISTER:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    try:
        return int(args.func(args) or 0)
    except (CliError, ValueError, FileNotFoundError) as error:
        # ValueError covers the catalog's TopologyError/TrafficError: one clear line, no trace.
        print(f"ryute {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `ryute topology show geant | head`): not an error.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
