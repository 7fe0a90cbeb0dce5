"""Gate 1 data rules: every input row ends up clean or quarantined with its reason codes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from carprice.data.outliers import OutlierRules, price_outliers
from carprice.data.schema import CANONICAL_COLUMNS, NUMERIC_COLUMNS, listing_schema
from carprice.runtime import listing

DUPLICATE = "duplicate"
PRICE_OUTLIER = "price_outlier"


@dataclass(frozen=True)
class ValidationRules:
    """Data rules, read from the `validation` section of params.yaml."""

    # Fields, bounds, allowed values and placeholders are the listing contract's (one source
    # with the API), not params.yaml's; params may change which fields a row must have.
    required_fields: tuple[str, ...] = listing.REQUIRED_COLUMNS
    non_car_makes: tuple[str, ...] = ()
    year_max: int = field(default_factory=listing.year_max)
    outlier: OutlierRules = field(default_factory=OutlierRules)

    CONFIGURABLE = ("required_fields", "non_car_makes", "outlier")

    @classmethod
    def from_params(cls, section: dict[str, Any], today: dt.date | None = None) -> ValidationRules:
        section = dict(section)
        today = today or dt.date.today()
        unknown = set(section) - set(cls.CONFIGURABLE)
        if unknown:
            raise ValueError(
                f"unknown validation parameters: {sorted(unknown)} (listing fields, bounds and "
                "placeholders live in carprice.runtime.listing, shared with the API)"
            )
        year_max = listing.year_max(today)
        outlier = OutlierRules(**section.pop("outlier", {}))
        required = tuple(section.pop("required_fields", listing.REQUIRED_COLUMNS))
        bad = set(required) - set(CANONICAL_COLUMNS)
        if bad:
            raise ValueError(f"required_fields names unknown columns: {sorted(bad)}")
        makes = tuple(section.pop("non_car_makes", ()))
        return cls(
            required_fields=required,
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


def rules_schema(rules: ValidationRules) -> pa.DataFrameSchema:
    """Return gate 1's listing schema for these rules; its named checks are the reason codes."""
    return listing_schema(
        year_max=rules.year_max,
        required=rules.required_fields,
        non_car_makes=rules.non_car_makes,
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
    listing_schema(
        year_max=rules.year_max,
        required=rules.required_fields,
        non_car_makes=rules.non_car_makes,
        clean=True,
    ).validate(clean)
    counts = {code: int(mask.sum()) for code, mask in sorted(flags.items())}
    return ValidationResult(clean, quarantine.reset_index(drop=True), counts, problems)
