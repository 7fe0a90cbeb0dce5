"""Where carprice keeps its state (CARPRICE_HOME) and the one file digest every artifact uses."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def home_dir(root: Path | None = None) -> Path:
    """Return CARPRICE_HOME, or `var/` under `root` (default: the working directory)."""
    configured = os.environ.get("CARPRICE_HOME")
    return Path(configured or Path(root or Path.cwd()) / "var").resolve()


def file_sha256(path: Path) -> str:
    """Return the sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
