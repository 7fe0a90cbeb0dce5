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

from carprice.runtime import listing
from carprice.runtime.listing import INPUTS, frame_model_keys, model_key

SPEC_VERSION = 1
# The listing contract's features, plus two derived ones: the `make|model` key (a category, next
# to the make) and two ratios.
MAKE_MODEL = "make_model"
CATEGORICAL = tuple(
    c
    for name in listing.CATEGORICAL
    for c in ((name, MAKE_MODEL) if name == listing.MODEL_KEY_FIELDS[0] else (name,))
)
NUMERIC = (*listing.NUMERIC, "km_per_year", "hp_rel")
FEATURES = CATEGORICAL + NUMERIC
__all__ = ["CATEGORICAL", "FEATURES", "INPUTS", "NUMERIC", "FeatureSpec"]
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
        object.__setattr__(self, "_lookups", tuple((name, index[name]) for name in CATEGORICAL))

    @property
    def categorical_features(self) -> list[int]:
        """Positions of the categorical columns, for LightGBM."""
        return [i for i, name in enumerate(self.features) if name in CATEGORICAL]

    # --- fitting and persistence -------------------------------------------------------------

    @classmethod
    def fit(cls, frame, ref_year: int | None = None) -> FeatureSpec:
        """Learn vocabularies and lookups from a clean training frame (an optional listing
        column may be absent: it is then missing in every row)."""
        keys = frame_model_keys(frame)
        vocab = {
            name: sorted(frame[name].dropna().unique().tolist()) if name in frame else []
            for name in CATEGORICAL
            if name != MAKE_MODEL
        }
        vocab[MAKE_MODEL] = sorted(keys.unique().tolist())
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

    # --- encoding ---------------------------------------------------------------------------
    # One definition: `encode_row` turns one listing's raw values into its model row with
    # Python floats (the IEEE-754 double arithmetic numpy uses too). Requests, batches and
    # training frames all go through it, so training and serving cannot encode differently.

    def encode_row(self, row: Mapping) -> list[float]:
        """Return the model row of one listing (canonical keys; None or NaN where missing)."""
        get = row.get
        key = model_key(get("make"), get("model"))
        out = [
            lookup.get(key if name == MAKE_MODEL else get(name), _NAN)
            for name, lookup in self._lookups
        ]
        out.extend(_float(get(name)) for name in listing.NUMERIC)
        mileage, hp, year = _float(get("mileage")), _float(get("hp")), _float(get("year"))
        age = self.ref_year - year
        age = age if age > 0.5 or age != age else 0.5  # np.maximum(age, 0.5), NaN kept
        out.append(mileage / age)
        out.append(_divide(hp, self.hp_median.get(key, _NAN)))
        return out

    def encode_values(self, *values) -> list[float]:
        """Return the model row of one listing's raw values, given in the order of INPUTS."""
        return self.encode_row(dict(zip(INPUTS, values, strict=True)))

    def encode_rows(self, rows: Iterable[Mapping]) -> np.ndarray:
        """Encode listings given as mappings (canonical keys; missing values as None)."""
        encoded = [self.encode_row(row) for row in rows]
        return np.array(encoded, dtype=np.float64).reshape(len(encoded), len(self.features))

    def encode_frame(self, frame) -> np.ndarray:
        """Encode a pandas DataFrame with the canonical input columns into the model matrix."""
        columns = [
            _plain(frame[name]) if name in frame else _absent(name, frame) for name in INPUTS
        ]
        encoded = [self.encode_values(*values) for values in zip(*columns, strict=True)]
        return np.array(encoded, dtype=np.float64).reshape(len(encoded), len(self.features))


def _plain(series) -> list:
    """Return a column as Python values: text as str (missing: None), numbers as float (NaN)."""
    if series.name in listing.NUMERIC_COLUMNS:
        return series.to_numpy(dtype=np.float64, na_value=np.nan).tolist()
    values = series.astype(object)
    return values.where(values.notna(), None).tolist()


def _absent(name: str, frame) -> list:
    """Return an optional column the frame lacks as missing values; a required one is an error."""
    if listing.BY_NAME[name].required:
        raise KeyError(f"the frame has no column {name!r}")
    return [None] * len(frame)


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
