"""Model bundles: a directory of LightGBM native text and JSON, verified before it serves.

Layout:
    model.txt, model_q_low.txt, model_q_high.txt   LightGBM boosters on log price
    feature_spec.json                               the FeatureSpec
    supported_models.json                           [{"make", "model"}, ...]
    interval.json                                   interval level and calibration offsets
    metadata.json                                   model_version, lineage, metrics, gates
    checksums.json                                  sha256 of every file above

No pickle anywhere: a bundle is data, never code. This module imports no pandas.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import lightgbm as lgb

from carprice.runtime.features import FeatureSpec
from carprice.runtime.home import file_sha256
from carprice.runtime.listing import model_key

BOOSTERS = ("model.txt", "model_q_low.txt", "model_q_high.txt")
JSON_FILES = ("feature_spec.json", "supported_models.json", "interval.json", "metadata.json")
CHECKSUMS = "checksums.json"


class BundleError(Exception):
    """A bundle is incomplete, tampered with or inconsistent; it must not serve."""


@dataclass(frozen=True)
class Bundle:
    """A verified, loaded bundle."""

    path: Path
    spec: FeatureSpec
    point: lgb.Booster
    low: lgb.Booster
    high: lgb.Booster
    supported: frozenset[str]
    interval: dict
    metadata: dict

    @property
    def version(self) -> str:
        return str(self.metadata["model_version"])

    @cached_property
    def checksums_sha256(self) -> str:
        """The bundle's identity: the sha256 of its checksums.json (a package and a release
        manifest record it as `bundle_checksums_sha256`)."""
        return file_sha256(self.path / CHECKSUMS)


def _dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_bundle(
    out_dir: Path,
    *,
    boosters: dict[str, lgb.Booster],
    spec: FeatureSpec,
    supported: list[tuple[str, str]],
    interval: dict,
    metadata: dict,
) -> Path:
    """Write a complete bundle atomically: into a temporary sibling, then renamed into place."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"bundle already exists: {out_dir}")
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in BOOSTERS:
        boosters[name].save_model(str(tmp / name))
    spec.save(tmp / "feature_spec.json")
    _dump(tmp / "supported_models.json", [{"make": a, "model": b} for a, b in sorted(supported)])
    _dump(tmp / "interval.json", interval)
    _dump(tmp / "metadata.json", metadata)
    _dump(tmp / CHECKSUMS, {name: file_sha256(tmp / name) for name in BOOSTERS + JSON_FILES})
    _fsync_tree(tmp)  # the files must be on disk before the rename makes the bundle visible
    os.replace(tmp, out_dir)
    _fsync_dir(out_dir.parent)
    return out_dir


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for file in path.iterdir():
        with file.open("rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(path)


def verify_bundle(path: Path) -> dict[str, str]:
    """Check that every file is present and matches its checksum; raise BundleError if not."""
    path = Path(path)
    try:
        checksums = json.loads((path / CHECKSUMS).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BundleError(f"{path}: unreadable {CHECKSUMS}: {err}") from err
    for name in BOOSTERS + JSON_FILES:
        if name not in checksums:
            raise BundleError(f"{path}: {CHECKSUMS} does not list {name}")
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing")
        if file_sha256(file) != checksums[name]:
            raise BundleError(f"{path}: {name} does not match its checksum (corrupt or tampered)")
    return checksums


def check_model_text(path: Path) -> None:
    """Check a LightGBM model file is structurally complete before LightGBM parses it.

    LightGBM aborts the whole process (not an exception) on some truncated files, so a damaged
    file must be caught here, even when its checksum was recomputed after the damage.
    """
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    sizes = next((ln for ln in text.splitlines() if ln.startswith("tree_sizes=")), None)
    trees = sum(1 for ln in text.splitlines() if ln.startswith("Tree="))
    if (
        not text.startswith("tree\n")
        or sizes is None
        or "\nend of trees\n" not in text
        or "\nend of parameters\n" not in text
        or len(sizes.split("=", 1)[1].split()) != trees
    ):
        raise BundleError(f"{path}: cannot load: not a complete LightGBM model file")


def load_bundle(path: Path) -> Bundle:
    """Verify and load a bundle; raise BundleError when it must not serve."""
    path = Path(path)
    verify_bundle(path)
    for name in BOOSTERS:
        check_model_text(path / name)
    try:
        spec = FeatureSpec.load(path / "feature_spec.json")
        boosters = [lgb.Booster(model_file=str(path / name)) for name in BOOSTERS]
        supported = json.loads((path / "supported_models.json").read_text(encoding="utf-8"))
        interval = json.loads((path / "interval.json").read_text(encoding="utf-8"))
        metadata = json.loads((path / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, lgb.basic.LightGBMError) as err:
        raise BundleError(f"{path}: cannot load: {err}") from err
    for name, booster in zip(BOOSTERS, boosters, strict=True):
        if booster.num_feature() != len(spec.features):
            raise BundleError(
                f"{path}: {name} expects {booster.num_feature()} features, "
                f"the feature spec has {len(spec.features)}"
            )
    if "model_version" not in metadata:
        raise BundleError(f"{path}: metadata.json has no model_version")
    keys = frozenset(model_key(m["make"], m["model"]) for m in supported)
    return Bundle(path, spec, *boosters, supported=keys, interval=interval, metadata=metadata)
