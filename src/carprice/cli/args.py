"""Argument types, checks and help formatting shared by the `carprice` subcommands."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
from pathlib import Path


class UsageError(ValueError):
    """A mistake in the command line or its inputs: one sentence, exit code 2."""


class HelpFormatter(argparse.HelpFormatter):
    """Show each option's default after its help, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS)
        if shown and "default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def date_arg(text: str) -> dt.date:
    """Parse a YYYY-MM-DD command-line date."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from err


def at_least(low: int):
    """An argument type: a whole number from `low` on."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}")
        return value

    return parse


def require_folder(option: str, folder: str, files: tuple[str, ...], then: str) -> Path:
    """Return `folder` if it holds `files`; else say which option, what is missing and what to run.

    Args:
        option: the command-line option that named the folder, e.g. "--data".
        files: the files the folder must hold.
        then: the command that writes them, e.g. "carprice validate --out DIR".
    """
    path = Path(folder)
    missing = [name for name in files if not (path / name).is_file()]
    if not missing:
        return path
    found = "does not exist" if not path.exists() else f"lacks {', '.join(missing)}"
    if path.exists() and not path.is_dir():
        found = "is a file, not a folder"
    raise UsageError(
        f"{option} {folder}: the folder {found}; expected {', '.join(files)} there "
        f"- run `{then}` first"
    )


def require_listings(option: str, text: str, snapshots: Path) -> None:
    """Refuse a listings argument that is neither a path nor a known snapshot id."""
    if Path(text).exists() or (snapshots / f"{Path(text).name}.parquet").is_file():
        return
    raise UsageError(
        f"{option} {text}: no such file, folder or snapshot id; expected a CSV/Parquet file, "
        f"a folder of them, or a snapshot from `carprice ingest` (in {snapshots})"
    )


@contextlib.contextmanager
def service_store(home: Path, create: bool = True):
    """The service's store (CARPRICE_DB_URL, else SQLite under `home`), created unless not
    `create`, disposed on exit."""
    from carprice.runtime.store import Store, default_url

    store = Store(default_url(home), os.environ.get("CARPRICE_DB_PREFIX", ""))
    try:
        if create:
            store.create()
        yield store
    finally:
        store.dispose()


def on_store(command, prog: str = "carprice clients"):
    """Wrap `command(store, args)` to run on the service's store (CARPRICE_DB_URL, else SQLite
    under CARPRICE_HOME); a store that does not answer is exit 1 with its reason."""

    def run(args: argparse.Namespace) -> int:
        from carprice.config import Paths
        from carprice.runtime.store import Store, StoreError, default_url

        try:
            url = default_url(Paths.from_env().home)
            store = Store(url, os.environ.get("CARPRICE_DB_PREFIX", ""))
            store.create()
        except StoreError as err:
            reason = str(err).splitlines()[0]
            print(f"{prog}: error: the store did not answer: {reason}", file=sys.stderr)
            return 1
        try:
            return command(store, args)
        finally:
            store.dispose()

    return run
