"""Gate 1 data rules: every input row ends up clean or quarantined with its reason codes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from carprice.data.outliers import OutlierRules, price_outliers
from carprice.data.schema import (
    CANONICAL_COLUMNS,
    FUELS,
    GEARS,
    NUMERIC_COLUMNS,
    OFFER_TYPES,
    clean_schema,
)
from carprice.runtime import listing

DUPLICATE = "duplicate"
PRICE_OUTLIER = "price_outlier"


@dataclass(frozen=True)
class ValidationRules:
    """Data rules, read from the `validation` section of params.yaml."""

    required_fields: tuple[str, ...] = CANONICAL_COLUMNS
    placeholders: dict[str, tuple[str, ...]] = field(default_factory=dict)
    non_car_makes: tuple[str, ...] = ()
    # Bounds come from the listing contract (one source with the API), not from params.yaml.
    mileage_max: int = listing.MILEAGE_MAX
    hp_min: int = listing.HP_MIN
    hp_max: int = listing.HP_MAX
    year_min: int = listing.YEAR_MIN
    year_max: int = field(default_factory=listing.year_max)
    price_min: int = listing.PRICE_MIN
    price_max: int = listing.PRICE_MAX
    outlier: OutlierRules = field(default_factory=OutlierRules)

    CONFIGURABLE = ("required_fields", "placeholders", "non_car_makes", "outlier")

    @classmethod
    def from_params(cls, section: dict[str, Any], today: dt.date | None = None) -> ValidationRules:
        section = dict(section)
        today = today or dt.date.today()
        unknown = set(section) - set(cls.CONFIGURABLE)
        if unknown:
            raise ValueError(
                f"unknown validation parameters: {sorted(unknown)} (listing bounds live in "
                "carprice.runtime.listing, shared with the API)"
            )
        year_max = listing.year_max(today)
        placeholders = {k: tuple(v) for k, v in section.pop("placeholders", {}).items()}
        outlier = OutlierRules(**section.pop("outlier", {}))
        required = tuple(section.pop("required_fields", CANONICAL_COLUMNS))
        bad = set(required) - set(CANONICAL_COLUMNS)
        if bad:
            raise ValueError(f"required_fields names unknown columns: {sorted(bad)}")
        makes = tuple(section.pop("non_car_makes", ()))
        return cls(
            required_fields=required,
            placeholders=placeholders,
            non_car_makes=makes,
            year_max=year_max,
            outlier=outlier,
            **section,
        )


@dataclass
class ValidationResult:
    """Clean rows, quarantined rows with reasons, and the column-level problems found."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    reason_counts: dict[str, int]
    column_problems: list[str]

    @property
    def rows_in(self) -> int:
        return len(self.clean) + len(self.quarantine)


def _check(name: str, fn) -> pa.Check:
    return pa.Check(fn, name=name)


def rules_schema(rules: ValidationRules) -> pa.DataFrameSchema:
    """Build the pandera schema whose named checks are the per-cell reason codes."""

    def not_in(values):
        return lambda s: ~s.isin(values)

    def integral(s):
        return s == np.floor(s)

    def column(name: str, checks: list[pa.Check]) -> pa.Column:
        placeholders = rules.placeholders.get(name)
        if placeholders:
            checks = [_check(f"placeholder_{name}", not_in(list(placeholders))), *checks]
        if name in NUMERIC_COLUMNS:
            checks = [_check(f"not_integer_{name}", integral), *checks]
        return pa.Column(None, checks, nullable=name not in rules.required_fields)

    def known(name, allowed):
        values = [*allowed, *rules.placeholders.get(name, ())]
        return _check(f"unknown_{name}", lambda s: s.isin(values))

    def between(lo, hi):
        return lambda s: (s >= lo) & (s <= hi)

    return pa.DataFrameSchema(
        {
            "mileage": column(
                "mileage", [_check("impossible_mileage", between(0, rules.mileage_max))]
            ),
            "make": column("make", [_check("non_car_make", not_in(list(rules.non_car_makes)))]),
            "model": column("model", []),
            "fuel": column("fuel", [known("fuel", FUELS)]),
            "gear": column("gear", [known("gear", GEARS)]),
            "offerType": column("offerType", [known("offerType", OFFER_TYPES)]),
            "price": column(
                "price", [_check("impossible_price", between(rules.price_min, rules.price_max))]
            ),
            "hp": column("hp", [_check("impossible_hp", between(rules.hp_min, rules.hp_max))]),
            "year": column(
                "year", [_check("impossible_year", between(rules.year_min, rules.year_max))]
            ),
        },
        name="listing_rules",
    )


def _coerce(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Bring a frame to the canonical columns with float numerics; flag unparseable numbers."""
    flags: dict[str, np.ndarray] = {}
    out = {}
    for name in CANONICAL_COLUMNS:
        series = df[name] if name in df.columns else pd.Series(np.nan, index=df.index)
        if name in NUMERIC_COLUMNS:
            text = series.astype("str").str.strip() if series.dtype == object else series
            parsed = pd.to_numeric(text, errors="coerce").astype("float64")
            parsed = parsed.where(np.isfinite(parsed))
            flags[f"not_numeric_{name}"] = (parsed.isna() & series.notna()).to_numpy()
            out[name] = parsed
        else:
            text = series.astype("str").str.strip()
            out[name] = text.where(series.notna() & (text != ""), np.nan)
    return pd.DataFrame(out, index=df.index), flags


def row_flags(
    df: pd.DataFrame, rules: ValidationRules
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray], list[str]]:
    """Apply the per-row rules: the source rows, the coerced frame, reason flags, problems.

    Each row is judged alone, so any partition of the rows gets the same flags.
    """
    source = df.reset_index(drop=True)
    frame, flags = _coerce(source)
    n = len(frame)
    problems = [
        f"required column {c!r} is missing"
        if c not in source.columns
        else f"required column {c!r} is empty"
        for c in rules.required_fields
        if c not in source.columns or (n and frame[c].isna().all())
    ]
    try:
        rules_schema(rules).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases.dropna(subset=["index"])
        codes = np.where(
            cases["check"] == "not_nullable", "missing_" + cases["column"], cases["check"]
        )
        for code, rows in pd.Series(cases["index"].astype(int).to_numpy()).groupby(codes):
            mask = np.zeros(n, dtype=bool)
            mask[rows.to_numpy()] = True
            flags[code] = flags.get(code, np.zeros(n, dtype=bool)) | mask
    for name in NUMERIC_COLUMNS:  # a value that is there but unreadable is not "missing"
        if f"missing_{name}" in flags:
            flags[f"missing_{name}"] &= ~flags[f"not_numeric_{name}"]
    return source, frame, flags, problems


def any_flag(flags: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Return the rows with at least one reason flag."""
    dirty = np.zeros(n, dtype=bool)
    for mask in flags.values():
        dirty |= mask
    return dirty


def validate(df: pd.DataFrame, rules: ValidationRules) -> ValidationResult:
    """Split listings into clean rows and quarantined rows with their reason codes."""
    source, frame, flags, problems = row_flags(df, rules)
    dirty = any_flag(flags, len(frame))
    flags[DUPLICATE] = frame.duplicated(keep="first").to_numpy()
    flags[PRICE_OUTLIER] = price_outliers(frame, ~dirty, rules.outlier)
    return split_rows(source, frame, flags, problems, rules)


def split_rows(source, frame, flags, problems, rules) -> ValidationResult:
    """Return the clean rows and the quarantined rows with their reasons, given the flags."""
    n = len(frame)
    flags = {code: mask for code, mask in flags.items() if mask.any()}
    bad = any_flag(flags, n)
    q_rows = np.flatnonzero(bad)
    reasons = pd.Series("", index=q_rows, dtype=object)
    for code in sorted(flags):
        hit = flags[code][q_rows]
        reasons[hit] = reasons[hit] + code + ";"
    quarantine = source.iloc[q_rows].copy()
    quarantine.insert(0, "row", q_rows)
    quarantine["reasons"] = reasons.str.rstrip(";").to_numpy()
    clean = frame.loc[~bad, list(CANONICAL_COLUMNS)].copy()
    optional = tuple(c for c in CANONICAL_COLUMNS if c not in rules.required_fields)
    for name in NUMERIC_COLUMNS:
        clean[name] = clean[name].astype("Int64" if name in optional else "int64")
    clean = clean.reset_index(drop=True)
    # The contract of clean data; a failure here is a bug in the rules, not in the data.
    clean_schema(min_year=rules.year_min, max_year=rules.year_max, optional=optional).validate(
        clean
    )
    counts = {code: int(mask.sum()) for code, mask in sorted(flags.items())}
    return ValidationResult(clean, quarantine.reset_index(drop=True), counts, problems)
