"""Gate 1 on Dask partitions: carprice.data.rules' per-partition steps (the ones one process
runs on its one partition), each run on the worker that holds the rows.

The snapshot's rows are numbered, then spread over partitions by make on the cluster
(`carprice.data.partitions.bucket_of`), so every (make, model) and every duplicate (duplicates
share their make) lies in one partition. The driver gets the per-partition results one
partition at a time (carprice.data.dask_gate): the clean rows are appended to the output file,
the quarantined rows are kept for their report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carprice.data.partitions import bucket_of
from carprice.data.rules import BUCKET, ROW, ValidationRules, finish, judge, outlier_fit

HISTOGRAMS = ["price", "mileage", "year", "hp"]  # what the data report plots of clean rows


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


def run_rules(client, raw, rules: ValidationRules, buckets: int) -> list:
    """Run every rule on the cluster; return futures of each partition's PartitionResult."""
    import dask

    parts = spread(raw, buckets).to_delayed()
    judged = client.compute([dask.delayed(judge)(p, rules) for p in parts])
    ref_year, coef = outlier_fit(
        judged, rules, lambda step, futures, **kw: client.gather(client.map(step, futures, **kw))
    )
    return client.map(finish, judged, rules=rules, ref_year=ref_year, coef=coef)
