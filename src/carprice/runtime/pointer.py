"""The deploy pointer: which bundle the service serves, swapped atomically.

`CARPRICE_HOME/deploy/current` is a symlink to a bundle directory (`deploy/challenger`, when
present, names the shadow model). A swap writes a temporary symlink beside the pointer and renames
it over the old one, so a reader sees the old bundle or the new one, never a missing pointer. Every
swap is appended to `deploy/history.jsonl`. No pandas here: the service imports this module.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

CURRENT = "current"
CHALLENGER = "challenger"
HISTORY = "history.jsonl"


def deploy_dir(home: Path) -> Path:
    """Return the folder that holds the pointers and their history."""
    return Path(home) / "deploy"


def pointer_path(home: Path, name: str = CURRENT) -> Path:
    """Return the path of a named pointer (it may not exist)."""
    return deploy_dir(home) / name


def read_pointer(home: Path, name: str = CURRENT) -> Path | None:
    """Return the bundle directory a pointer names, or None when there is no pointer."""
    link = pointer_path(home, name)
    if not link.is_symlink():
        return None
    target = Path(os.readlink(link))
    if not target.is_absolute():
        target = link.parent / target
    return target.resolve()


def swap_pointer(home: Path, bundle: Path, name: str = CURRENT, note: str = "") -> Path | None:
    """Point `name` at `bundle` atomically; return the bundle it named before (or None).

    The caller verifies the bundle first (`carprice.runtime.bundle.verify_bundle`); this
    function only refuses a target that is not a directory.
    """
    bundle = Path(bundle).resolve()
    if not bundle.is_dir():
        raise FileNotFoundError(f"bundle directory not found: {bundle}")
    folder = deploy_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    previous = read_pointer(home, name)
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(bundle, tmp)
    os.replace(tmp, pointer_path(home, name))
    _append_history(
        folder,
        {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "pointer": name,
            "bundle": str(bundle),
            "previous": str(previous) if previous else None,
            "note": note,
        },
    )
    return previous


def history(home: Path) -> list[dict]:
    """Return every recorded swap, oldest first."""
    path = deploy_dir(home) / HISTORY
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _append_history(folder: Path, entry: dict) -> None:
    with (folder / HISTORY).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
