"""The ``ryute`` command: one entry point, one subcommand per area.

Each area module exposes ``register(subparsers)``, which adds its subcommands and sets
``func`` (taking the parsed arguments, returning an exit code) on each of them. Heavy
imports (os-ken, torch) happen inside those functions, so ``ryute --help`` stays fast. The
operator's commands against a running controller (``ryute status``, ``links``, ...) build a
parser of their own module only: they import no NumPy, SciPy, networkx, torch or os-ken and
answer in a fraction of a second.
The command dispatches to every layer (topologies, agents, controller, lab), so it lives in the
top one: no layer below imports it, each only registers its own subcommands.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from controller import client, logs
from controller.cli_errors import CliError

Register = Callable[[argparse._SubParsersAction], None]


def _train(subparsers: argparse._SubParsersAction) -> None:
    """``ryute train``: the fluid simulation (agents/), and Mininet (the lab's, ``--env mininet``)."""
    from agents import train_cli
    from lab import mininet_train_cli

    train_cli.register(subparsers, envs={"mininet": mininet_train_cli.MININET})


def registers() -> list[Register]:
    """Every area's ``register``, in the order of ``ryute --help`` (imported only now)."""
    from agents import anomalies_cli, evaluate, forecast_cli, model_cli, plan
    from controller import launcher
    from lab import demo, emulate
    from topologies import cli as topology_cli

    return [topology_cli.register, evaluate.register, forecast_cli.register, plan.register,
            anomalies_cli.register, _train, model_cli.register, launcher.register,
            client.register, emulate.register, demo.register]


def _global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: INFO)",
    )
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="text, or one JSON object per line (default: text)")


def build_parser(only: Register | None = None) -> argparse.ArgumentParser:
    """The ``ryute`` parser: every subcommand, or those of ``only`` (one area's register)."""
    parser = argparse.ArgumentParser(
        prog="ryute", description="Adaptive traffic engineering for OpenFlow networks."
    )
    _global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in [only] if only else registers():
        register(subparsers)
    return parser


def _command(argv: Sequence[str] | None) -> str | None:
    """The subcommand named in ``argv`` (None: none yet, e.g. ``ryute --help``)."""
    options = argparse.ArgumentParser(add_help=False)
    _global_options(options)
    _, rest = options.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    return rest[0] if rest and not rest[0].startswith("-") else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(client.register if _command(argv) in client.COMMANDS else None)
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
