"""The one `streamer` command. Each subcommand lives in its own module and registers here.

A subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed args, returns an exit code). Modules are imported lazily
so `streamer --help` stays fast and the core never pulls in Kafka.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# module path of each subcommand, in the order `--help` lists them
SUBCOMMANDS = [
    "streamer.commands.demo",
    "streamer.commands.broker",
    "streamer.commands.topics",
    "streamer.commands.worker",
    "streamer.commands.simulate",
    "streamer.commands.consume",
    "streamer.commands.chain",
    "streamer.commands.backtest",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer",
        description="Real-time signal engine for systematic equity flows on Kafka.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # subcommand not written yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
