"""Listing frames in canonical form: canonical column names, stripped text, parsed numbers.

A numeric column becomes numbers only when every one of its values parses, over every source
file (and, on Dask, every partition): otherwise it stays text so that validation can quarantine
the bad values with a reason. The decision is made from per-part profiles, so it is the same
whether the column is seen whole or in partitions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carprice.data.schema import CANONICAL_COLUMNS, NUMERIC_COLUMNS, canonical_name


def canonical_text(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Map a source frame to the canonical columns, text stripped, numbers not yet parsed.

    Returns the frame, the ignored source columns and the canonical columns that were absent.
    """
    mapping: dict[str, str] = {}
    ignored = []
    for column in raw.columns:
        target = canonical_name(column)
        if target is None:
            ignored.append(str(column))
        elif target in mapping.values():
            other = next(k for k, v in mapping.items() if v == target)
            raise ValueError(f"columns {other!r} and {column!r} both map to {target!r}")
        else:
            mapping[column] = target
    frame = raw[list(mapping)].rename(columns=mapping)
    missing = [c for c in CANONICAL_COLUMNS if c not in frame.columns]
    out = {}
    for column in CANONICAL_COLUMNS:
        if column not in frame.columns:
            out[column] = pd.Series(pd.NA, index=frame.index, dtype="str")
            continue
        series = frame[column]
        if series.dtype == object or pd.api.types.is_string_dtype(series):
            series = series.astype("str").str.strip().replace("", np.nan)
        out[column] = series
    return pd.DataFrame(out), ignored, missing


def with_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Parse each numeric column of a canonical text frame, deciding its type from all values."""
    kinds = {c: numeric_kind([numeric_profile(frame[c])]) for c in NUMERIC_COLUMNS}
    return as_kinds(frame, kinds)


def numeric_profile(series: pd.Series) -> tuple[int, int, bool]:
    """Count a column's values and those that parse; say if every parsed one is integral."""
    parsed = pd.to_numeric(series, errors="coerce")
    finite = parsed[parsed.notna()]
    integral = bool(np.all(np.isfinite(finite)) and np.all(finite == np.round(finite)))
    return int(series.notna().sum()), int(parsed.notna().sum()), integral


def numeric_kind(profiles: list[tuple[int, int, bool]]) -> str:
    """The dtype of a column from the profiles of its parts: text unless every value parses."""
    values, parsed = sum(p[0] for p in profiles), sum(p[1] for p in profiles)
    if parsed != values:
        return "str"
    return "Int64" if parsed and all(p[2] for p in profiles) else "float64"


def as_kinds(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Convert the numeric columns of a canonical text frame to their decided dtypes."""

    def convert(series: pd.Series, kind: str) -> pd.Series:
        if kind == "str":
            return series.astype("str")
        return pd.to_numeric(series, errors="coerce").astype(kind)

    return frame.assign(**{c: convert(frame[c], kind) for c, kind in kinds.items()})
