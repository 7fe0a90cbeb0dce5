"""FeatureSpec: the one encoder shared by training and serving.

A spec is fitted once on training rows and saved as JSON: category vocabularies, per-model
lookups and the column order. Encoding a training frame and encoding a single API request run
the same arithmetic on the same numbers, so a request can never be encoded differently from the
rows the model learned on. Nothing is re-fitted at request time.

This module imports numpy only: the service uses it without pandas. `encode_frame` accepts a
pandas DataFrame through its methods, without importing pandas.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPEC_VERSION = 1
# Raw inputs the encoder reads (canonical names).
INPUTS = ("make", "model", "fuel", "gear", "offerType", "mileage", "hp", "year")
CATEGORICAL = ("make", "make_model", "fuel", "gear", "offerType")
NUMERIC = ("mileage", "hp", "year", "km_per_year", "hp_rel")
FEATURES = CATEGORICAL + NUMERIC
SEPARATOR = "|"


def model_key(make, model) -> str:
    """Return the key of a (make, model) pair as used in vocabularies and lookups."""
    return f"{make}{SEPARATOR}{model}"


@dataclass(frozen=True)
class FeatureSpec:
    """Category vocabularies, per-model lookups and column order of the model matrix."""

    ref_year: int
    vocab: dict[str, list[str]]
    hp_median: dict[str, float]
    features: tuple[str, ...] = FEATURES
    version: int = SPEC_VERSION
    _index: dict[str, dict[str, float]] = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        index = {
            name: {v: float(i) for i, v in enumerate(vals)} for name, vals in self.vocab.items()
        }
        object.__setattr__(self, "_index", index)

    @property
    def categorical_features(self) -> list[int]:
        """Positions of the categorical columns, for LightGBM."""
        return [i for i, name in enumerate(self.features) if name in CATEGORICAL]

    # --- fitting and persistence -------------------------------------------------------------

    @classmethod
    def fit(cls, frame, ref_year: int | None = None) -> FeatureSpec:
        """Learn vocabularies and lookups from a clean training frame."""
        keys = frame["make"].astype(str) + SEPARATOR + frame["model"].astype(str)
        vocab = {
            "make": sorted(frame["make"].dropna().unique().tolist()),
            "make_model": sorted(keys.unique().tolist()),
            "fuel": sorted(frame["fuel"].dropna().unique().tolist()),
            "gear": sorted(frame["gear"].dropna().unique().tolist()),
            "offerType": sorted(frame["offerType"].dropna().unique().tolist()),
        }
        medians = frame["hp"].astype(float).groupby(keys).median().dropna()
        ref = int(ref_year if ref_year is not None else int(frame["year"].max()) + 1)
        return cls(ref_year=ref, vocab=vocab, hp_median={k: float(v) for k, v in medians.items()})

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "ref_year": self.ref_year,
            "features": list(self.features),
            "vocab": self.vocab,
            "hp_median": self.hp_median,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> FeatureSpec:
        if data.get("version") != SPEC_VERSION:
            raise ValueError(f"unsupported feature spec version {data.get('version')!r}")
        features = tuple(data["features"])
        if features != FEATURES:
            raise ValueError(f"feature list {features} does not match this code's {FEATURES}")
        return cls(
            ref_year=int(data["ref_year"]),
            vocab={k: list(v) for k, v in data["vocab"].items()},
            hp_median={k: float(v) for k, v in data["hp_median"].items()},
            features=features,
        )

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> FeatureSpec:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    # --- encoding ----------------------------------------------------------------------------

    def _derived(self, mileage, hp, year, hp_med) -> tuple[np.ndarray, np.ndarray]:
        age = np.maximum(self.ref_year - year, 0.5)
        return mileage / age, hp / hp_med

    def encode_frame(self, frame) -> np.ndarray:
        """Encode a pandas DataFrame with the canonical input columns into the model matrix."""
        keys = frame["make"].astype(str) + SEPARATOR + frame["model"].astype(str)
        cats = {
            "make": frame["make"],
            "make_model": keys,
            "fuel": frame["fuel"],
            "gear": frame["gear"],
            "offerType": frame["offerType"],
        }
        columns = {
            name: values.map(self._index[name]).to_numpy(dtype=np.float64, na_value=np.nan)
            for name, values in cats.items()
        }
        nums = {
            c: frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
            for c in ("mileage", "hp", "year")
        }
        hp_med = keys.map(self.hp_median).to_numpy(dtype=np.float64, na_value=np.nan)
        km_per_year, hp_rel = self._derived(nums["mileage"], nums["hp"], nums["year"], hp_med)
        columns.update(nums, km_per_year=km_per_year, hp_rel=hp_rel)
        return np.column_stack([columns[name] for name in self.features])

    def encode_rows(self, rows: Iterable[Mapping]) -> np.ndarray:
        """Encode listings given as mappings (canonical keys; missing values as None)."""
        rows = list(rows)
        n_cat = len(CATEGORICAL)
        out = np.empty((len(rows), len(self.features)), dtype=np.float64)
        keys = []
        nan = float("nan")
        for i, row in enumerate(rows):
            key = model_key(row.get("make"), row.get("model"))
            keys.append(key)
            values = (row.get("make"), key, row.get("fuel"), row.get("gear"), row.get("offerType"))
            for j, (name, value) in enumerate(zip(CATEGORICAL, values, strict=True)):
                out[i, j] = self._index[name].get(value, nan)
            for j, name in enumerate(("mileage", "hp", "year")):
                value = row.get(name)
                out[i, n_cat + j] = nan if value is None else float(value)
        hp_med = np.array([self.hp_median.get(k, nan) for k in keys], dtype=np.float64)
        km_per_year, hp_rel = self._derived(
            out[:, n_cat], out[:, n_cat + 1], out[:, n_cat + 2], hp_med
        )
        out[:, n_cat + 3] = km_per_year
        out[:, n_cat + 4] = hp_rel
        return out
