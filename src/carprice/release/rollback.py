"""Rollback: gate 3 again on an earlier release's image, then production switches back to it."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

from carprice.config import Paths
from carprice.release import container, promote
from carprice.release.candidate import read_json
from carprice.release.gate3 import run_gate3
from carprice.release.report import write_report


def release_image(folder: Path, say: Callable[[str], None]) -> tuple[str | None, str]:
    """Return the image of a release (rebuilt from its bundle if the engine lost it) and a note."""
    manifest = read_json(folder / promote.MANIFEST)
    image = manifest["image"]
    engine = container.detect()
    if engine is None:
        return None, "no container engine"
    if engine.image_exists(image["id"]):
        return image["id"], f"recorded image {image['id'][:12]}"
    say(f"image {image['id'][:12]} is gone from {engine.name}: rebuilding it from the bundle")
    started = time.perf_counter()
    rebuilt = container.build(folder / "bundle", image.get("tag") or "carprice:rollback")
    note = (
        f"recorded image {image['id'][:12]} was gone; rebuilt {rebuilt[:12]} from the release "
        f"bundle with the current code in {time.perf_counter() - started:.0f} s"
    )
    return rebuilt, note


def rollback(
    version: str | None, paths: Paths, settings: dict, say: Callable[[str], None], local=False
) -> tuple[bool, dict]:
    """Re-run gate 3 on an earlier release; switch production back only if it passes."""
    home = paths.home
    target = promote.rollback_target(home, version)
    folder = promote.releases_dir(home) / target
    current = promote.current_release(home)
    say(f"rollback: release {current} -> {target}; gate 3 first")
    image, note = (None, "local process (opt-in)") if local else release_image(folder, say)
    report = run_gate3(folder, settings, say, image=image, local=local)
    report["image_note"] = note
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = folder / "rollbacks" / stamp
    write_report(out, report)
    details = {"gate3": str(out / "e2e.json"), "gate3_passed": report["passed"], "image": image}
    if not report["passed"] or local:
        why = "gate 3 failed" if not report["passed"] else "gate 3 ran on a local process only"
        entry = promote.append_history(
            home,
            {
                "action": "rollback-refused",
                "release": target,
                "previous": current,
                "why": why,
                **details,
            },
        )
        return False, entry
    try:
        return True, promote.switch(paths, target, "rollback", say, note=note, **details)
    except promote.ReleaseError as err:
        entry = promote.append_history(
            home,
            {"action": "rollback-refused", "release": target, "previous": current, "why": str(err)}
            | details,
        )
        return False, entry
