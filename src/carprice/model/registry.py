"""MLflow tracking and model registry: runs, registered versions and their aliases.

Embedded by default: a SQLite file under CARPRICE_HOME and the artifact root of `Paths.artifacts`
(CARPRICE_ARTIFACT_ROOT, else CARPRICE_HOME/mlartifacts), which every experiment of that store,
MLflow's `Default` included, writes under: nothing lands in the working directory.
MLFLOW_TRACKING_URI names another store instead: a database (PostgreSQL, another SQLite file),
whose artifacts still go under that root, or a tracking server with its own artifact settings.

A registered version is an MLflow pyfunc model (model/pyfunc.py) holding the bundle at
`artifacts/bundle`; the service and gate 3 download only the bundle, and no pickle is involved.
Gate reports are artifacts of the version's run, under `reports/gate1`, `reports/gate2` and
`reports/gate3`.
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
DATABASES = ("sqlite", "postgresql", "mysql", "mssql")  # tracking stores without a server
REPORT_SUFFIXES = (".json", ".html", ".csv", ".log", ".txt", ".png")  # gate reports, not data
_exported: str | None = None


@dataclass(frozen=True)
class RegisteredBundle:
    """A registered model version and where its bundle is on local disk."""

    version: str
    run_id: str
    path: Path
    tags: dict[str, str]


def configure(paths: Paths | None = None, experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the configured tracking store and `experiment`; return the store's URI."""
    import mlflow

    paths = paths or Paths.from_env()
    global _exported
    # set_tracking_uri exports MLFLOW_TRACKING_URI itself: only a value we did not set is given.
    given = os.environ.get("MLFLOW_TRACKING_URI")
    if given is not None and given == _exported:
        given = None
    uri = given
    if not uri:
        paths.home.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{paths.home / 'mlflow.db'}"
    # A database this process writes to directly (not a tracking server) keeps its artifacts
    # under the configured root; a server applies its own artifact settings.
    direct = uri.split(":", 1)[0].split("+", 1)[0] in DATABASES
    if direct:
        _create_store(uri, paths)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    _exported = os.environ.get("MLFLOW_TRACKING_URI")
    if mlflow.get_experiment_by_name(experiment) is None:
        location = paths.artifacts.as_uri() if direct else None
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return uri


def _create_store(uri: str, paths: Paths) -> None:
    """Create the tracking tables, when missing, with the configured default artifact root.

    MLflow's client otherwise creates the `Default` experiment with `./mlruns` of whatever
    directory the first command ran in.
    """
    if uri.startswith("sqlite:///") and Path(uri.removeprefix("sqlite:///")).exists():
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(uri, paths.artifacts.as_uri()).engine.dispose()


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def register(bundle_dir: Path, run_id: str, tags: dict[str, str]) -> str:
    """Log a bundle as the pyfunc model of the active run `run_id`, register it, return the
    new version."""
    import mlflow

    from carprice.model.pyfunc import log_bundle_model

    active = mlflow.active_run()
    if active is None or active.info.run_id != run_id:
        raise ValueError(f"register needs run {run_id} to be the active run")
    client = _client()
    try:
        client.get_registered_model(MODEL_NAME)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(MODEL_NAME, description="used-car price estimator")
    info = log_bundle_model(bundle_dir)
    version = client.create_model_version(
        MODEL_NAME, info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id
    )
    return str(version.version)


def attach_report(version: str, gate: str, folder: Path) -> None:
    """Log a gate's report folder under `reports/<gate>` of the run behind a registered version.

    Data files (Parquet) stay out: the reports are JSON, HTML, CSV and logs.
    """
    folder = Path(folder)
    client = _client()
    run_id = client.get_model_version(MODEL_NAME, version).run_id
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in REPORT_SUFFIXES:
            client.log_artifact(run_id, str(path), f"reports/{gate}")


def set_alias(alias: str, version: str) -> None:
    _client().set_registered_model_alias(MODEL_NAME, alias, version)


def _named(alias: str):
    """The model version `alias` names, or None when it names none."""
    import mlflow

    try:
        return _client().get_model_version_by_alias(MODEL_NAME, alias)
    except mlflow.exceptions.MlflowException:
        return None


def drop_alias_from(alias: str, version: str) -> bool:
    """Remove `alias` when it names `version`; return whether it did."""
    holder = _named(alias)
    if holder is None or str(holder.version) != str(version):
        return False
    _client().delete_registered_model_alias(MODEL_NAME, alias)
    return True


def set_tags(version: str, tags: dict[str, str]) -> None:
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(MODEL_NAME, version, key, value)


def by_alias(alias: str, cache_dir: Path) -> RegisteredBundle | None:
    """Return the version behind an alias with its bundle on local disk, or None if unset."""
    mv = _named(alias)
    return None if mv is None else _materialise(mv, cache_dir)


def by_version(version: str, cache_dir: Path) -> RegisteredBundle:
    """Return a registered version with its bundle on local disk."""
    return _materialise(_client().get_model_version(MODEL_NAME, version), cache_dir)


def _materialise(mv, cache_dir: Path) -> RegisteredBundle:
    """Download only the bundle of a version: `artifacts/bundle` of its pyfunc model (or, for
    versions registered before the pyfunc flavour, the bundle folder the version names)."""
    import mlflow

    target = Path(cache_dir) / f"v{mv.version}"
    if not target.exists():
        tmp = Path(cache_dir) / f".v{mv.version}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        legacy = mv.source.rstrip("/").endswith("/bundle")
        if legacy:
            mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(tmp))
        else:
            uri = _client().get_model_version_download_uri(MODEL_NAME, mv.version)
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{uri.rstrip('/')}/artifacts/bundle", dst_path=str(tmp)
            )
        os.replace(tmp / "bundle", target)
        shutil.rmtree(tmp, ignore_errors=True)
    return RegisteredBundle(str(mv.version), mv.run_id, target, dict(mv.tags))
