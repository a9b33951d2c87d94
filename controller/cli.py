"""The ``ryute`` command: one entry point, one subcommand per area.

Each area module exposes ``register(subparsers)``, which adds its subcommands and sets
``func`` (taking the parsed arguments, returning an exit code) on each of them. Heavy
imports (os-ken, torch) happen inside those functions, so ``ryute --help`` stays fast.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agents import evaluate, model_cli, train_cli
from controller import client, demo, emulate, launcher, logs
from controller.cli_errors import CliError
from topologies import cli as topology_cli

AREAS = [topology_cli, evaluate, train_cli, model_cli, launcher, client, emulate, demo]


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
    for area in AREAS:
        area.register(subparsers)
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
