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


@dataclass(frozen=True)
class Paths:
    """Filesystem layout, rooted at the working directory unless the environment says otherwise."""

    root: Path
    home: Path

    @classmethod
    def from_env(cls, root: Path | None = None) -> Paths:
        root = Path(root or os.environ.get("CARPRICE_ROOT") or Path.cwd()).resolve()
        home = home_dir(root)
        return cls(root=root, home=home)

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
