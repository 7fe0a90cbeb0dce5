"""MLflow tracking and model registry: runs, registered versions and their aliases.

Embedded by default: a SQLite file under CARPRICE_HOME and a local artifact folder beside it.
MLFLOW_TRACKING_URI points to a server instead. A registered version's source is the bundle
directory logged as an artifact of its run; no MLflow model flavour (and no pickle) is involved.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from carprice.config import Paths

MODEL_NAME = "carprice"
EXPERIMENT = "carprice"
CHAMPION, CHALLENGER = "champion", "challenger"
_exported: str | None = None


@dataclass(frozen=True)
class RegisteredBundle:
    """A registered model version and where its bundle is on local disk."""

    version: str
    run_id: str
    path: Path
    tags: dict[str, str]


def configure(paths: Paths | None = None) -> str:
    """Point MLflow at the configured tracking store and return its URI."""
    import mlflow

    paths = paths or Paths.from_env()
    global _exported
    # set_tracking_uri exports MLFLOW_TRACKING_URI itself: only a value we did not set is a server.
    server = os.environ.get("MLFLOW_TRACKING_URI")
    if server is not None and server == _exported:
        server = None
    uri = server
    if not uri:
        paths.home.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{paths.home / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    _exported = os.environ.get("MLFLOW_TRACKING_URI")
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        location = None if server else (paths.home / "mlartifacts").as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)
    return uri


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def register(bundle_dir: Path, run_id: str, tags: dict[str, str]) -> str:
    """Log a bundle as an artifact of a run, register it as a new version and return it."""
    import mlflow

    client = _client()
    client.log_artifacts(run_id, str(bundle_dir), artifact_path="bundle")
    try:
        client.get_registered_model(MODEL_NAME)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(MODEL_NAME, description="used-car price estimator")
    source = f"{client.get_run(run_id).info.artifact_uri}/bundle"
    version = client.create_model_version(MODEL_NAME, source, run_id=run_id, tags=tags)
    return str(version.version)


def set_alias(alias: str, version: str) -> None:
    _client().set_registered_model_alias(MODEL_NAME, alias, version)


def set_tags(version: str, tags: dict[str, str]) -> None:
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(MODEL_NAME, version, key, value)


def by_alias(alias: str, cache_dir: Path) -> RegisteredBundle | None:
    """Return the version behind an alias with its bundle on local disk, or None if unset."""
    import mlflow

    client = _client()
    try:
        mv = client.get_model_version_by_alias(MODEL_NAME, alias)
    except mlflow.exceptions.MlflowException:
        return None
    return _materialise(mv, cache_dir)


def by_version(version: str, cache_dir: Path) -> RegisteredBundle:
    """Return a registered version with its bundle on local disk."""
    return _materialise(_client().get_model_version(MODEL_NAME, version), cache_dir)


def _materialise(mv, cache_dir: Path) -> RegisteredBundle:
    import mlflow

    target = Path(cache_dir) / f"v{mv.version}"
    if not target.exists():
        tmp = Path(cache_dir) / f".v{mv.version}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(tmp))
        os.replace(tmp / "bundle", target)
        shutil.rmtree(tmp, ignore_errors=True)
    return RegisteredBundle(str(mv.version), mv.run_id, target, dict(mv.tags))
