"""The `carprice` command: one entry point, subcommands grouped by district.

Subcommands parse arguments, call the stage functions, move files and set the exit code;
the logic lives in the districts. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

from carprice.cli import (
    clients,
    data,
    experiment,
    model,
    monitor,
    release,
    serve,
    simulator,
    store,
)
from carprice.cli.args import HelpFormatter
from carprice.cli.progress import quiet_library_bars

DISTRICTS = (data, model, release, experiment, monitor, store, simulator, serve, clients)


def package_version() -> str:
    """Return the installed carprice version (package metadata)."""
    try:
        return version("carprice")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carprice", description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for district in DISTRICTS:
        district.add_commands(sub)
    for subparser in sub.choices.values():
        subparser.formatter_class = HelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_library_bars()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"carprice {args.command}: error: {_sentence(err)}", file=sys.stderr)
        return 2


def _sentence(err: Exception) -> str:
    """One line for an error, naming the file an OSError is about."""
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror or 'not found'}"
    return str(err)
