"""Paths and parameters: where things live (environment) and how stages behave (params.yaml)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from carprice.runtime.home import home_dir

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACT_ROOT_ENV = "CARPRICE_ARTIFACT_ROOT"


@dataclass(frozen=True)
class Paths:
    """Filesystem layout, rooted at the working directory unless the environment says otherwise.

    `artifact_root` is where MLflow stores run artifacts and logged models when the tracking store
    is the embedded SQLite file: CARPRICE_ARTIFACT_ROOT, else `mlartifacts/` under CARPRICE_HOME.
    """

    root: Path
    home: Path
    artifact_root: Path | None = None

    @classmethod
    def from_env(cls, root: Path | None = None) -> Paths:
        root = Path(root or os.environ.get("CARPRICE_ROOT") or Path.cwd()).resolve()
        home = home_dir(root)
        artifacts = os.environ.get(ARTIFACT_ROOT_ENV)
        return cls(
            root=root, home=home, artifact_root=Path(artifacts).resolve() if artifacts else None
        )

    @property
    def artifacts(self) -> Path:
        """The MLflow artifact root (absolute): runs, logged models, gate reports."""
        return Path(self.artifact_root or self.home / "mlartifacts").resolve()

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def snapshots(self) -> Path:
        return self.root / "data" / "snapshots"

    @property
    def reports(self) -> Path:
        return self.root / "reports"


def load_params(path: Path | str = "params.yaml") -> dict[str, Any]:
    """Read params.yaml; the caller passes the sections on to the stages explicitly."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"parameters file not found: {path}")
    with path.open(encoding="utf-8") as fh:
        params = yaml.safe_load(fh)
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a mapping of sections, got {type(params).__name__}")
    return params


def from_section(cls, section: dict[str, Any] | None, name: str):
    """Build a parameters dataclass from one params.yaml section, refusing unknown keys."""
    section = dict(section or {})
    unknown = set(section) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {name} parameters: {sorted(unknown)}")
    return cls(**section)


def params_hash(params: dict[str, Any]) -> str:
    """Return a stable sha256 of the parameters, for lineage."""
    text = yaml.safe_dump(params, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
