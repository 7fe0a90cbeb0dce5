"""Package: export the registry's challenger as a release candidate, with its golden set.

The package folder holds everything gate 3 and promotion need, and nothing else:

    bundle/          the verified bundle, as registered (model text, FeatureSpec, supported
                     models, interval, metadata, checksums)
    golden.jsonl     held-out and edge-case inputs with the offline model's answers
    package.json     registry version, model version, lineage, checksums, golden-set summary
    image.json       written by `carprice image` once the container image is built
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from carprice.config import Paths
from carprice.model import registry
from carprice.model.lineage import snapshot_of
from carprice.release.golden import build_golden, write_golden
from carprice.runtime.bundle import load_bundle, verify_bundle
from carprice.runtime.home import file_sha256
from carprice.runtime.predictor import Predictor

PACKAGE_JSON, GOLDEN, IMAGE_JSON = "package.json", "golden.jsonl", "image.json"


def package(
    validated: Path, out: Path, settings: dict, paths: Paths, say: Callable[[str], None]
) -> dict:
    """Export the challenger and its golden set into `out` (replaced atomically)."""
    validated, out = Path(validated), Path(out)
    registry.configure(paths)
    reg = registry.by_alias(registry.CHALLENGER, paths.home / "registry-cache")
    if reg is None:
        raise ValueError("the registry has no challenger: run `carprice train` first")
    verify_bundle(reg.path)
    bundle = load_bundle(reg.path)
    lineage = bundle.metadata.get("lineage", {})
    held_out_from = snapshot_of(validated).get("snapshot_id")
    if lineage.get("snapshot_id") and held_out_from != lineage["snapshot_id"]:
        raise ValueError(
            f"{validated} holds snapshot {held_out_from}, but the challenger was trained on "
            f"{lineage['snapshot_id']}: its held-out rows are not in this folder"
        )
    say(f"packaging {registry.MODEL_NAME} version {reg.version} ({bundle.version})")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copytree(reg.path, staging / "bundle")
    verify_bundle(staging / "bundle")
    clean = pd.read_parquet(validated / "clean.parquet")
    cases = build_golden(Predictor(bundle), clean, settings["golden_rows"], settings["golden_seed"])
    write_golden(staging / GOLDEN, cases)
    statuses = pd.Series([c["expected"]["status"] for c in cases]).value_counts().to_dict()
    checksums = json.loads((staging / "bundle" / "checksums.json").read_text(encoding="utf-8"))
    manifest = {
        "registry_version": reg.version,
        "run_id": reg.run_id,
        "model_version": bundle.version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "lineage": lineage,
        "model_sha256": checksums["model.txt"],
        "bundle_checksums_sha256": file_sha256(staging / "bundle" / "checksums.json"),
        "golden": {
            "file": GOLDEN,
            "sha256": file_sha256(staging / GOLDEN),
            "cases": len(cases),
            "heldout": sum(c["kind"] == "heldout" for c in cases),
            "edge": sum(c["kind"] == "edge" for c in cases),
            "statuses": {str(k): int(v) for k, v in statuses.items()},
        },
    }
    (staging / PACKAGE_JSON).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    g = manifest["golden"]
    say(f"package {out}: {g['heldout']} held-out + {g['edge']} edge golden cases {g['statuses']}")
    return manifest


def record_image(package_dir: Path, image_id: str, tag: str, engine: str, seconds: float) -> dict:
    """Note in the package which image carries its bundle."""
    info = {
        "id": image_id,
        "tag": tag,
        "engine": engine,
        "build_seconds": round(seconds, 1),
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    path = Path(package_dir) / IMAGE_JSON
    path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
