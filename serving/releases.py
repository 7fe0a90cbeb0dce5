"""The release the service runs, as `carprice promote` recorded it under CARPRICE_HOME/releases/.

`carprice promote` writes `releases/<n>/manifest.json` (release number, lineage, the three gate
verdicts, the parameter set) and copies gate 2's report beside it (carprice.release.promote).
The service finds its release by the served model's version; the production container mounts
CARPRICE_HOME, so it finds it as a local process does. A bundle served outside a release (a
development bundle, gate 3's run before promotion) has none.
"""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "manifest.json"  # carprice.release.promote.MANIFEST
GATE2_REPORT = Path("gate2") / "evaluation.json"  # promote.GATE_FILES["gate2"][0]


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _number(folder: Path) -> tuple[int, str]:
    name = folder.name
    return (int(name), name) if name.isdigit() else (-1, name)


def release_of(home: Path, model_version: str) -> dict | None:
    """Return what a keyed client learns about the release serving `model_version` (the latest
    release of it), or None when no release holds it."""
    folders = sorted(
        (Path(home) / "releases").glob(f"*/{MANIFEST}"), key=lambda p: _number(p.parent)
    )
    for path in reversed(folders):
        manifest = _read(path)
        if manifest.get("model_version") != model_version:
            continue
        gate2 = _read(path.parent / GATE2_REPORT)
        gates = manifest.get("gates") or {}
        return {
            "release": manifest.get("release"),
            "created_at": manifest.get("created_at"),
            "git_commit": manifest.get("git_commit"),
            "snapshot": manifest.get("snapshot"),
            "params_hash": manifest.get("params_hash"),
            "gates": {name: bool(gate.get("passed")) for name, gate in gates.items()},
            "test_metrics": gate2.get("metrics"),
            "gate2_reasons": gate2.get("reasons", []),
            "params": manifest.get("params"),
        }
    return None
