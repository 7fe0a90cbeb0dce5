"""The `carprice` command: one entry point, subcommands grouped by district.

Subcommands parse arguments, call the stage functions, move files and set the exit code;
the logic lives in the districts. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import sys

from carprice.cli import data, model, monitor, release, serve, simulator

DISTRICTS = (data, model, release, monitor, simulator, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carprice", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for district in DISTRICTS:
        district.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"carprice {args.command}: error: {err}", file=sys.stderr)
        return 2
