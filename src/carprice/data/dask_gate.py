"""Gate 1 on partitions, gathered: the per-partition results become gate 1's usual outputs.

The driver fetches one partition's result at a time. Clean rows are appended to a Parquet file
(one row group per partition, in partition order) and only the columns the data report plots
are kept; quarantined rows are kept whole (they are written and reported row by row). Counts
are summed, so the report, the sufficiency table and the verdict are those of one process.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from carprice.data.dask_rules import HISTOGRAMS, run_rules
from carprice.data.gate import DataThresholds, GateResult, data_gate
from carprice.data.partitions import read_partitioned
from carprice.data.rules import ValidationResult, ValidationRules, column_problems
from carprice.data.sufficiency import clean_counts, quarantined_counts, table_of

PARTITIONS_PER_WORKER = 4  # partitions by make, unless train.distributed.partitions says


def _collect(futures, clean_file: Path) -> tuple:
    """Fetch each partition's result; append its clean rows to `clean_file`.

    Returns the plotted clean columns, the quarantined rows, the reason counts, the non-null
    counts of required columns and the clean rows per (make, model).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, schema = None, None
    plotted, quarantined, counts, non_null, per_model = [], [], Counter(), Counter(), []
    try:
        for future in futures:
            part = future.result()
            if writer is None:
                schema = pa.Schema.from_pandas(part.clean, preserve_index=False)
                writer = pq.ParquetWriter(clean_file, schema)
            table = pa.Table.from_pandas(part.clean, schema=schema, preserve_index=False)
            writer.write_table(table)
            plotted.append(part.clean[HISTOGRAMS])
            quarantined.append(part.quarantine)
            counts.update(part.reason_counts)
            non_null.update(part.non_null)
            per_model.append(clean_counts(part.clean))
            future.release()
    finally:
        if writer is not None:
            writer.close()
    quarantine = pd.concat(quarantined).sort_values("row", ignore_index=True)
    models = pd.concat(per_model).groupby(level=[0, 1]).sum().rename("clean_rows")
    return pd.concat(plotted, ignore_index=True), quarantine, counts, non_null, models


def validate_on_partitions(
    client,
    snapshot: Path,
    clean_file: Path,
    rules: ValidationRules,
    thresholds: DataThresholds,
    partitions: int,
) -> tuple[ValidationResult, pd.DataFrame, GateResult]:
    """Gate 1 of a snapshot on the cluster; the clean rows are written to `clean_file`.

    The returned result's `clean` holds only the columns the report plots.
    """
    raw = read_partitioned(snapshot, min_partitions=partitions)
    futures = run_rules(client, raw, rules, partitions)
    plotted, quarantine, counts, non_null, models = _collect(futures, clean_file)
    rows_in = len(plotted) + len(quarantine)
    problems = column_problems(rules, list(raw.columns), rows_in, non_null)
    result = ValidationResult(plotted, quarantine, dict(sorted(counts.items())), problems)
    table = table_of(models, quarantined_counts(quarantine), thresholds.min_rows_per_model)
    return result, *data_gate(result, thresholds, table)
