"""Gate 1 data rules: every input row ends up clean or quarantined with its reason codes.

The rules are written once, per partition: the per-row rules and duplicates (`judge`), the
outlier rule's statistics (`candidate_stats`, `partition_equations`: its pooled linear fit is
solved from normal equations summed over the partitions) and the split (`finish`). On one
machine, `validate` runs them on one partition, the whole frame; carprice.data.dask_rules maps
the same functions over partitions by make, where every (make, model) and every duplicate lies
in one partition.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from carprice.data.outliers import (
    OutlierRules,
    design,
    judgeable,
    kept,
    normal_equations,
    solve,
)
from carprice.data.schema import CANONICAL_COLUMNS, NUMERIC_COLUMNS, listing_schema
from carprice.runtime import listing

DUPLICATE = "duplicate"
PRICE_OUTLIER = "price_outlier"
ROW, BUCKET = "_row", "_bucket"  # a partition's row numbers in the snapshot, its make's bucket


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


def rules_schema(rules: ValidationRules, clean: bool = False) -> pa.DataFrameSchema:
    """Return gate 1's listing schema for these rules (of clean rows when `clean`); its named
    checks are the reason codes."""
    return listing_schema(
        year_max=rules.year_max,
        required=rules.required_fields,
        non_car_makes=rules.non_car_makes,
        clean=clean,
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
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """Apply the per-row rules: the source rows, the coerced frame and the reason flags.

    Each row is judged alone, so any partition of the rows gets the same flags.
    """
    source = df.reset_index(drop=True)
    frame, flags = _coerce(source)
    n = len(frame)
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
    return source, frame, flags


def any_flag(flags: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Return the rows with at least one reason flag."""
    dirty = np.zeros(n, dtype=bool)
    for mask in flags.values():
        dirty |= mask
    return dirty


def validate(df: pd.DataFrame, rules: ValidationRules) -> ValidationResult:
    """Split listings into clean rows and quarantined rows with their reason codes: the
    per-partition rules on one partition, the whole frame."""
    judged = judge(df.assign(**{ROW: np.arange(len(df))}), rules)
    ref_year, coef = outlier_fit(
        [judged], rules, lambda step, parts, **kw: [step(p, **kw) for p in parts]
    )
    part = finish(judged, rules, ref_year, coef)
    problems = column_problems(rules, df.columns, len(df), part.non_null)
    return ValidationResult(part.clean, part.quarantine, part.reason_counts, problems)


def column_problems(rules: ValidationRules, columns, rows: int, non_null: dict) -> list[str]:
    """Column-level problems: a required column missing, or empty (`non_null` counts)."""
    return [
        f"required column {c!r} is {'missing' if c not in columns else 'empty'}"
        for c in rules.required_fields
        if c not in columns or (rows and non_null.get(c, 0) == 0)
    ]


@dataclass
class PartitionResult:
    """One partition's clean rows, quarantined rows (snapshot row numbers) and counts."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    reason_counts: dict[str, int]
    non_null: dict[str, int]  # non-missing values of each required column


def judge(part: pd.DataFrame, rules: ValidationRules) -> tuple:
    """Per-row rules and duplicates of one partition (rows numbered in `_row`), in row order."""
    part = part.sort_values(ROW)
    rows = part[ROW].to_numpy()
    source, frame, flags = row_flags(part.drop(columns=[ROW, BUCKET], errors="ignore"), rules)
    dirty = any_flag(flags, len(frame))
    flags[DUPLICATE] = frame.duplicated(keep="first").to_numpy()
    return rows, source, frame, flags, dirty


def candidate_stats(judged: tuple) -> tuple[int, float]:
    """Outlier candidates (rows passing the per-row rules) and their newest judgeable year."""
    _, _, frame, _, dirty = judged
    rows = judgeable(frame, ~dirty)
    return int((~dirty).sum()), float(rows["year"].max()) if len(rows) else -np.inf


def _fit_rows(judged: tuple, ref_year: float):
    _, _, frame, _, dirty = judged
    rows = judgeable(frame, ~dirty)
    return rows, design(rows, ref_year), np.log(rows["price"].to_numpy(dtype=float))


def partition_equations(judged: tuple, rules: ValidationRules, ref_year: float, coef=None):
    """X'X and X'y of the rows the outlier fit keeps (all judgeable rows in the first pass)."""
    rows, x, y = _fit_rows(judged, ref_year)
    keep = np.ones(len(rows), bool) if coef is None else kept(rows, y - x @ coef, rules.outlier)
    return normal_equations(x, y, keep)


def outlier_fit(judged: list, rules: ValidationRules, gather_map) -> tuple[float, object]:
    """The outlier rule's reference year and pooled fit (None with too few candidates), in two
    passes: the second ignores the rows the first flags. `gather_map(step, parts, **kw)` runs a
    step on every partition and returns the results."""
    stats = gather_map(candidate_stats, judged)
    ref_year, coef = max(s[1] for s in stats), None
    if sum(s[0] for s in stats) >= rules.outlier.min_group_rows:
        for _ in range(2):
            step = partition_equations
            coef = solve(gather_map(step, judged, rules=rules, ref_year=ref_year, coef=coef))
    return ref_year, coef


def finish(judged: tuple, rules: ValidationRules, ref_year: float, coef) -> PartitionResult:
    """Flag outliers with the final fit and split the partition into clean and quarantined."""
    rows, source, frame, flags, _ = judged
    flags = dict(flags)
    outliers = np.zeros(len(frame), dtype=bool)
    if coef is not None:
        fit_rows, x, y = _fit_rows(judged, ref_year)
        outliers[frame.index.get_indexer(fit_rows.index)] = ~kept(
            fit_rows, y - x @ coef, rules.outlier
        )
    flags[PRICE_OUTLIER] = outliers
    result = split_rows(source, frame, flags, [], rules)
    quarantine = result.quarantine.assign(row=rows[result.quarantine["row"].to_numpy()])
    non_null = {c: int(frame[c].notna().sum()) for c in rules.required_fields if c in frame}
    return PartitionResult(result.clean, quarantine, result.reason_counts, non_null)


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
    rules_schema(rules, clean=True).validate(clean)
    counts = {code: int(mask.sum()) for code, mask in sorted(flags.items())}
    return ValidationResult(clean, quarantine.reset_index(drop=True), counts, problems)
