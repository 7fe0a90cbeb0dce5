"""Per-(make, model) sufficiency: which car models have enough clean data to be priced at all."""

from __future__ import annotations

import pandas as pd

KEYS = ["make", "model"]


def sufficiency(clean: pd.DataFrame, quarantine: pd.DataFrame, min_rows: int) -> pd.DataFrame:
    """Count clean and quarantined rows per (make, model) and mark the supported ones.

    A model is supported when it has at least `min_rows` clean rows. Quarantined rows are
    counted where their make and model are known, so a model held back by dirty data shows it.
    """
    if clean.empty and quarantine.empty:
        empty = pd.DataFrame({"make": [], "model": [], "clean_rows": [], "quarantined_rows": []})
        return empty.astype({"clean_rows": "int64", "quarantined_rows": "int64"}).assign(
            supported=pd.Series(dtype=bool)
        )
    return table_of(clean_counts(clean), quarantined_counts(quarantine), min_rows)


def clean_counts(clean: pd.DataFrame) -> pd.Series:
    """Return clean rows per (make, model)."""
    return clean.groupby(KEYS, sort=False).size().rename("clean_rows")


def quarantined_counts(quarantine: pd.DataFrame) -> pd.Series:
    """Return quarantined rows per (make, model), where both are known."""
    known = quarantine.dropna(subset=KEYS) if len(quarantine) else quarantine
    if not len(known):
        return pd.Series(dtype="int64", name="quarantined_rows")
    keys = known[KEYS].astype("str")
    return keys.groupby(KEYS, sort=False).size().rename("quarantined_rows")


def table_of(clean: pd.Series, quarantined: pd.Series, min_rows: int) -> pd.DataFrame:
    """Build the sufficiency table from row counts per (make, model)."""
    table = pd.concat([clean, quarantined], axis=1).fillna(0).astype("int64")
    table.index.names = KEYS
    table = table.reset_index()
    table["supported"] = table["clean_rows"] >= min_rows
    return table.sort_values(
        ["clean_rows", "make", "model"], ascending=[False, True, True], ignore_index=True
    )


def supported_rows_share(table: pd.DataFrame) -> float:
    """Return the share of clean rows that belong to supported models."""
    total = int(table["clean_rows"].sum())
    return float(table.loc[table["supported"], "clean_rows"].sum() / total) if total else 0.0
