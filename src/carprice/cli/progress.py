"""The one progress printer of the `carprice` command: progress to stderr, results to stdout."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    """Print one progress line to stderr, at once."""
    print(f"[carprice] {message}", file=sys.stderr, flush=True)
