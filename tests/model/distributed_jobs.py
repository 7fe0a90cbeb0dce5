"""Child processes of the distributed tests: train and judge one model, print a JSON summary.

`python -m tests.model.distributed_jobs single|driver DATA OUT [SCHEDULER]` trains on the clean
partitioned dataset DATA, writes a bundle under OUT, runs gate 2 with params.yaml's own bounds
(the simulated source's) and prints the verdict with the process's peak memory. `single` is the
single-process path (the whole frame in this process); `driver` is the distributed path's driver
against the Dask scheduler at SCHEDULER, so that a test can cap this process alone.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pandas as pd

from carprice.config import PROJECT_ROOT, load_params
from carprice.data.cluster import DistributedParams
from carprice.data.partitions import bucket_of
from carprice.model.calibration import withdrawn_models
from carprice.model.evaluate import evaluate
from carprice.model.gate import ModelThresholds, check_model_gate
from carprice.model.train import TEST, TRAIN, TrainParams, split_of, train
from carprice.runtime.bundle import load_bundle, write_bundle
from carprice.runtime.predictor import Predictor

PARAMS = load_params(PROJECT_ROOT / "params.yaml")
# A quick model: params.yaml's training settings with fewer, larger boosting steps.
QUICK = {"num_boost_round": 200, "quantile_boost_round": 60, "learning_rate": 0.2}


def quick_params(**distributed) -> TrainParams:
    """params.yaml's `train` section with QUICK's rounds and learning rate."""
    tp = TrainParams.from_params(PARAMS["train"])
    return dataclasses.replace(
        tp,
        num_boost_round=QUICK["num_boost_round"],
        quantile_boost_round=QUICK["quantile_boost_round"],
        lgb={**tp.lgb, "learning_rate": QUICK["learning_rate"]},
        distributed=DistributedParams(**distributed) if distributed else tp.distributed,
    )


def status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MiB.

    VmHWM (peak resident set) belongs to this program's own address space; getrusage's
    ru_maxrss would also count the parent's resident set at the fork that started it.
    """
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in lines if line.startswith(field + ":")) / 1024


def _peak() -> dict:
    """Peak resident and virtual memory of this process, in MiB."""
    return {"peak_rss_mb": status_mb("VmHWM"), "vm_peak_mb": status_mb("VmPeak")}


def write_partitioned(frame: pd.DataFrame, folder: Path, buckets: int) -> list[Path]:
    """Write `frame` as Parquet partitions by make into `folder`; return the files written.

    Row order within a partition is the frame's order, so the same frame gives the same files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for bucket, part in frame.groupby(bucket_of(frame["make"], buckets), sort=True):
        path = folder / f"part-{int(bucket):03d}.parquet"
        part.to_parquet(path, index=False)
        written.append(path)
    return written


def validated_folder(folder: Path, clean: pd.DataFrame, partitions: int) -> Path:
    """Write a gate 1 output folder whose clean rows are Parquet partitions by make."""
    write_partitioned(clean, folder / "clean.parquet", partitions)
    counts = clean.groupby(["make", "model"]).size().rename("clean_rows").reset_index()
    min_rows = PARAMS["gate1"]["min_rows_per_model"]
    counts.assign(quarantined_rows=0, supported=counts["clean_rows"] >= min_rows).to_csv(
        folder / "supported_models.csv", index=False
    )
    report = {"source": str(folder / "listings.csv")}
    (folder / "data_report.json").write_text(json.dumps(report), encoding="utf-8")
    return folder


def _bundle(model, counts: pd.Series, out: Path) -> Path:
    gate1, gate2 = PARAMS["gate1"], PARAMS["gate2"]
    withdrawn = withdrawn_models(
        model.model_errors, gate2["withdraw_min_rows"], gate2["withdraw_max_mape"]
    )
    supported = [
        key
        for key, n in counts.items()
        if n >= gate1["min_rows_per_model"] and "|".join(key) not in withdrawn
    ]
    return write_bundle(
        out / "bundle",
        boosters=model.boosters,
        spec=model.spec,
        supported=supported,
        interval=model.interval,
        metadata={"model_version": "m-test", "distributed": model.distributed},
    )


def _verdict(evaluation, model) -> dict:
    gate = check_model_gate(evaluation, ModelThresholds.from_params(PARAMS["gate2"], "simulated"))
    return {
        "passed": gate.passed,
        "reasons": gate.reasons,
        "metrics": evaluation.metrics,
        "distributed": model.distributed,
        **_peak(),
    }


def single(data: Path, out: Path) -> dict:
    """The single-process path: the whole frame in this process."""
    tp = quick_params()
    clean = pd.read_parquet(data)
    split = split_of(clean, tp.test_share, tp.calibration_share)
    model = train(clean, split, tp)
    bundle = _bundle(model, clean.groupby(["make", "model"]).size(), out)
    evaluation = evaluate(
        Predictor(load_bundle(bundle)), None, clean[split == TRAIN], clean[split == TEST]
    )
    return _verdict(evaluation, model)


def driver(data: Path, out: Path, scheduler: str) -> dict:
    """The distributed path's driver: rows stay on the workers of the cluster at `scheduler`."""
    from dask.distributed import Client

    from carprice.data.partitions import read_partitioned
    from carprice.model.dask_evaluate import evaluate_partitions
    from carprice.model.dask_train import train_dataset

    tp = quick_params(enabled=True, scheduler=scheduler)
    model = train_dataset(data, tp, say=lambda msg: print(msg, file=sys.stderr))
    with Client(scheduler):
        counts = read_partitioned(data).groupby(["make", "model"]).size().compute()
        bundle = _bundle(model, counts, out)
        evaluation = evaluate_partitions(
            bundle, None, read_partitioned(data), tp.test_share, tp.calibration_share
        )
    return _verdict(evaluation, model)


if __name__ == "__main__":
    job, data, out, *rest = sys.argv[1:]
    result = (
        single(Path(data), Path(out)) if job == "single" else driver(Path(data), Path(out), *rest)
    )
    print(json.dumps(result, default=str))
