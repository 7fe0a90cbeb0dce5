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

from carprice.runtime.listing import frame_model_keys, model_key

SPEC_VERSION = 1
# Raw inputs the encoder reads (canonical names).
INPUTS = ("make", "model", "fuel", "gear", "offerType", "mileage", "hp", "year")
CATEGORICAL = ("make", "make_model", "fuel", "gear", "offerType")
NUMERIC = ("mileage", "hp", "year", "km_per_year", "hp_rel")
FEATURES = CATEGORICAL + NUMERIC
_NAN = float("nan")


@dataclass(frozen=True)
class FeatureSpec:
    """Category vocabularies, per-model lookups and column order of the model matrix."""

    ref_year: int
    vocab: dict[str, list[str]]
    hp_median: dict[str, float]
    features: tuple[str, ...] = FEATURES
    version: int = SPEC_VERSION
    _index: dict[str, dict[str, float]] = field(default=None, repr=False, compare=False)
    _lookups: tuple = field(default=(), repr=False, compare=False)

    def __post_init__(self):
        index = {
            name: {v: float(i) for i, v in enumerate(vals)} for name, vals in self.vocab.items()
        }
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_lookups", tuple(index[name] for name in CATEGORICAL))

    @property
    def categorical_features(self) -> list[int]:
        """Positions of the categorical columns, for LightGBM."""
        return [i for i, name in enumerate(self.features) if name in CATEGORICAL]

    # --- fitting and persistence -------------------------------------------------------------

    @classmethod
    def fit(cls, frame, ref_year: int | None = None) -> FeatureSpec:
        """Learn vocabularies and lookups from a clean training frame."""
        keys = frame_model_keys(frame)
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
    # One definition: `encode_values` turns one listing's raw values into its model row with
    # Python floats (the IEEE-754 double arithmetic numpy uses too). Requests, batches and
    # training frames all go through it, so training and serving cannot encode differently.

    def encode_values(self, make, model, fuel, gear, offer_type, mileage, hp, year) -> list[float]:
        """Return the model row of one listing's raw values (None or NaN where missing)."""
        key = model_key(make, model)
        make_i, key_i, fuel_i, gear_i, offer_i = self._lookups
        mileage, hp, year = _float(mileage), _float(hp), _float(year)
        age = self.ref_year - year
        age = age if age > 0.5 or age != age else 0.5  # np.maximum(age, 0.5), NaN kept
        return [
            make_i.get(make, _NAN),
            key_i.get(key, _NAN),
            fuel_i.get(fuel, _NAN),
            gear_i.get(gear, _NAN),
            offer_i.get(offer_type, _NAN),
            mileage,
            hp,
            year,
            mileage / age,
            _divide(hp, self.hp_median.get(key, _NAN)),
        ]

    def encode_row(self, row: Mapping) -> list[float]:
        """Encode one listing given as a mapping with the canonical keys."""
        return self.encode_values(*(row.get(name) for name in INPUTS))

    def encode_rows(self, rows: Iterable[Mapping]) -> np.ndarray:
        """Encode listings given as mappings (canonical keys; missing values as None)."""
        encoded = [self.encode_row(row) for row in rows]
        return np.array(encoded, dtype=np.float64).reshape(len(encoded), len(self.features))

    def encode_frame(self, frame) -> np.ndarray:
        """Encode a pandas DataFrame with the canonical input columns into the model matrix."""
        columns = [_plain(frame[name]) for name in INPUTS]
        encoded = [self.encode_values(*values) for values in zip(*columns, strict=True)]
        return np.array(encoded, dtype=np.float64).reshape(len(encoded), len(self.features))


def _plain(series) -> list:
    """Return a column as Python values: text as str (missing: None), numbers as float (NaN)."""
    if series.name in ("mileage", "hp", "year"):
        return series.to_numpy(dtype=np.float64, na_value=np.nan).tolist()
    values = series.astype(object)
    return values.where(values.notna(), None).tolist()


def _float(value) -> float:
    try:
        return _NAN if value is None else float(value)
    except TypeError:  # pandas' NA
        return _NAN


def _divide(a: float, b: float) -> float:
    """Divide like numpy float64 (x/0 is ±inf or NaN, not an exception)."""
    if b == 0.0:
        return _NAN if a == 0.0 or a != a else float(np.divide(a, b))
    return a / b
