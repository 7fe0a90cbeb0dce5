"""Gate 1 on Dask partitions: the same rules, each run on the worker that holds the rows.

The snapshot's rows are numbered, then spread over partitions by make on the cluster
(`carprice.data.partitions.bucket_of`), so every (make, model) and every duplicate (duplicates
share their make) lies in one partition. Per partition: the per-row rules (`row_flags`), the
duplicate rule and the outlier rule's (make, model) statistics. The outlier rule's pooled
linear fit is solved from normal equations summed over the partitions, in the same two passes
as on one machine. The driver gets the per-partition results one partition at a time: the
clean rows are appended to the output file, the quarantined rows are kept for their report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from carprice.data.outliers import design, judgeable, kept, normal_equations, solve
from carprice.data.partitions import bucket_of
from carprice.data.rules import (
    DUPLICATE,
    PRICE_OUTLIER,
    ValidationRules,
    any_flag,
    row_flags,
    split_rows,
)

ROW, BUCKET = "_row", "_bucket"
HISTOGRAMS = ["price", "mileage", "year", "hp"]  # what the data report plots of clean rows


@dataclass
class PartitionResult:
    """One partition's clean rows, quarantined rows (global row numbers) and counts."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    reason_counts: dict[str, int]
    non_null: dict[str, int]


def spread(raw, buckets: int):
    """Number the rows in snapshot order and move them into `buckets` partitions by make."""
    lengths = raw.map_partitions(len).compute().to_numpy()
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype("int64")

    def number(frame: pd.DataFrame, partition_info=None) -> pd.DataFrame:
        start = int(offsets[partition_info["number"]])
        return frame.assign(
            **{
                ROW: np.arange(start, start + len(frame), dtype="int64"),
                BUCKET: bucket_of(frame["make"], buckets),
            }
        )

    meta = raw._meta.assign(**{ROW: np.array([], "int64"), BUCKET: np.array([], "int64")})
    return raw.map_partitions(number, meta=meta).shuffle(on=BUCKET, npartitions=buckets)


def judge(part: pd.DataFrame, rules: ValidationRules) -> tuple:
    """Per-row rules and duplicates of one partition, its rows back in snapshot order."""
    part = part.sort_values(ROW)
    rows = part[ROW].to_numpy()
    source, frame, flags, _ = row_flags(part.drop(columns=[ROW, BUCKET]), rules)
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


def run_rules(client, raw, rules: ValidationRules, buckets: int) -> list:
    """Run every rule on the cluster; return futures of each partition's PartitionResult."""
    import dask

    parts = spread(raw, buckets).to_delayed()
    judged = client.compute([dask.delayed(judge)(p, rules) for p in parts])
    stats = client.gather(client.map(candidate_stats, judged))
    ref_year = max(s[1] for s in stats)
    coef = None
    if sum(s[0] for s in stats) >= rules.outlier.min_group_rows:
        for _ in range(2):  # as carprice.data.outliers.price_outliers
            equations = client.map(
                partition_equations, judged, rules=rules, ref_year=ref_year, coef=coef
            )
            coef = solve(client.gather(equations))
    return client.map(finish, judged, rules=rules, ref_year=ref_year, coef=coef)
