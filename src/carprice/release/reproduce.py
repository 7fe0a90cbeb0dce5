"""Reproduce: rebuild a release from its recorded snapshot, parameters and code; compare.

The rebuild runs gate 1 and training through the `carprice` command in a throw-away
CARPRICE_HOME (its own MLflow store: nothing is registered in the real one). The code is the
recorded commit, extracted with `git archive`, when that commit is clean and differs from the
checkout; a `-dirty` or unknown commit cannot be checked out, so the current checkout is used and
the report says so. Identical means: the same booster texts, the same feature spec, supported
models and interval, and bit-identical predictions on the golden set and every clean row.

A release trained by lightgbm.dask is not rebuilt: it cannot be reproduced exactly (see
`NotReproducible`), and the command says so instead of reporting a difference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from carprice.config import PROJECT_ROOT, Paths, load_params, params_hash
from carprice.model.evaluate import score
from carprice.model.lineage import git_commit
from carprice.release import promote
from carprice.release.golden import canonical_frame, read_golden
from carprice.runtime.bundle import BOOSTERS, load_bundle
from carprice.runtime.home import file_sha256
from carprice.runtime.predictor import Predictor

COMPARED = (*BOOSTERS, "feature_spec.json", "supported_models.json", "interval.json")
# Measured by tests/model/test_distributed_repro.py.
DISTRIBUTED_REASON = (
    "lightgbm.dask does not give identical trees twice: it ranks the workers and orders each "
    "worker's partitions by iterating over a set of Dask keys, which changes from run to run, "
    "and each feature's bins and every histogram sum depend on which rows each rank holds; two "
    "runs on the same data with the same seed, settings and cluster give different boosters"
)


class NotReproducible(ValueError):
    """A release that cannot be rebuilt exactly; the message says why."""


def check_reproducible(version: str, bundle: Path) -> None:
    """Raise NotReproducible when the release's bundle was trained on a Dask cluster."""
    meta = json.loads((Path(bundle) / "metadata.json").read_text(encoding="utf-8"))
    layout = meta.get("distributed")
    if not layout:
        return
    raise NotReproducible(
        f"release {version} was trained by lightgbm.dask on {layout.get('workers')} workers "
        f"from {layout.get('partitions')} partitions with seed {layout.get('seed')}, and cannot "
        f"be reproduced exactly: {DISTRIBUTED_REASON}"
    )


def _code(recorded: str, work: Path) -> tuple[Path, str]:
    """Return the source folder to run and a sentence saying which code it is."""
    current = git_commit()
    if recorded == current and not current.endswith("-dirty"):
        return PROJECT_ROOT / "src", f"the checkout, at the recorded commit {recorded}"
    if recorded and recorded != "unknown" and not recorded.endswith("-dirty"):
        archive = subprocess.run(
            ["git", "archive", "--format=tar", recorded, "src"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            check=False,
        )
        if archive.returncode == 0:
            subprocess.run(["tar", "-x", "-C", str(work)], input=archive.stdout, check=True)
            return work / "src", f"the recorded commit {recorded} (git archive)"
    return PROJECT_ROOT / "src", (
        f"the current checkout {current}: the recorded commit {recorded!r} cannot be checked out"
    )


def _run(args: list[str], src: Path, home: Path, work: Path, say) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "CARPRICE_HOME": str(home),
        "CARPRICE_ROOT": str(work),
    }
    env.pop("MLFLOW_TRACKING_URI", None)  # the rebuild registers in its own throw-away store
    env.pop("CARPRICE_ARTIFACT_ROOT", None)  # ... and keeps its artifacts in that home
    say("rebuild: carprice " + " ".join(args[:1]))
    proc = subprocess.run(
        [sys.executable, "-m", "carprice.cli", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"carprice {args[0]} failed during the rebuild: {proc.stderr[-1500:]}")


def reproduce(version: str, paths: Paths, say: Callable[[str], None]) -> dict:
    """Rebuild release `version` and return the comparison (`identical` says the verdict)."""
    folder = promote.releases_dir(paths.home) / version
    if not (folder / promote.MANIFEST).exists():
        raise ValueError(f"release {version} does not exist under {folder.parent}")
    manifest = json.loads((folder / promote.MANIFEST).read_text(encoding="utf-8"))
    check_reproducible(version, folder / "bundle")
    snap = manifest["snapshot"]
    snapshot = paths.snapshots / f"{snap['id']}.parquet"
    if not snapshot.exists() or file_sha256(snapshot) != snap["sha256"]:
        raise ValueError(f"snapshot {snap['id']} is missing or altered at {snapshot}")
    params = folder / "params.yaml"
    if params_hash(load_params(params)) != manifest["params_hash"]:
        raise ValueError(f"{params} no longer matches the recorded params hash")
    with tempfile.TemporaryDirectory(prefix="carprice-reproduce-") as tmp:
        work = Path(tmp)
        src, code = _code(manifest.get("git_commit") or "unknown", work)
        say(f"rebuilding release {version} from snapshot {snap['id'][:12]} with {code}")
        validated, model = work / "validated", work / "model"
        _run(
            [
                "validate",
                "--listings",
                str(snapshot),
                "--out",
                str(validated),
                "--params",
                str(params),
            ],
            src,
            work / "home",
            work,
            say,
        )
        _run(
            ["train", "--data", str(validated), "--out", str(model), "--params", str(params)],
            src,
            work / "home",
            work,
            say,
        )
        result = compare(folder / "bundle", model / "bundle", folder, validated)
    result.update(release=version, code=code, snapshot=snap["id"])
    return result


def compare(released: Path, rebuilt: Path, folder: Path, validated: Path) -> dict:
    """Compare two bundles file by file and by their predictions."""
    files = {n: (released / n).read_bytes() == (rebuilt / n).read_bytes() for n in COMPARED}
    a, b = Predictor(load_bundle(released)), Predictor(load_bundle(rebuilt))
    listings = [c["listing"] for c in read_golden(folder / "golden.jsonl")]
    frames = {
        "golden": canonical_frame(listings),
        "clean rows": pd.read_parquet(validated / "clean.parquet"),
    }
    predictions = {}
    for name, frame in frames.items():
        x, y = score(a, frame), score(b, frame)
        same = bool((x["ok"] == y["ok"]).all()) and all(
            np.array_equal(x[c].to_numpy(), y[c].to_numpy(), equal_nan=True)
            for c in ("pred", "low", "high")
        )
        predictions[name] = {"rows": len(frame), "identical": same}
    return {
        "model_version": {"released": a.version, "rebuilt": b.version},
        "files": files,
        "predictions": predictions,
        "identical": all(files.values()) and all(p["identical"] for p in predictions.values()),
    }
