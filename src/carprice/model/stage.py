"""Train and evaluate stages: read gate 1 outputs, write bundles and reports, track in MLflow."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from carprice.config import Paths, params_hash
from carprice.data.cluster import dask_client, worker_count
from carprice.data.gate import GateResult
from carprice.data.partitions import read_partitioned
from carprice.model import registry
from carprice.model.calibration import Pricing, supported_keys
from carprice.model.dask_evaluate import evaluate_partitions
from carprice.model.dask_train import train_dataset
from carprice.model.evaluate import evaluate
from carprice.model.gate import ModelThresholds, check_model_gate
from carprice.model.lineage import git_commit, log_snapshot_input, snapshot_of, source_tags
from carprice.model.report import write_evaluation
from carprice.model.train import TEST, TRAIN, TrainParams, split_of, train
from carprice.runtime.bundle import load_bundle, write_bundle
from carprice.runtime.listing import split_model_key
from carprice.runtime.predictor import Predictor

Progress = Callable[[str], None]


def _flat(prefix: str, data: dict) -> dict[str, str]:
    out = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        out.update(_flat(name, value) if isinstance(value, dict) else {name: str(value)})
    return out


def run_training(
    validated: Path, out: Path, params: dict, paths: Paths, say: Progress, rounds=None
) -> dict:
    """Train on gate 1's clean rows, write the challenger bundle and register it.

    `rounds(done, total, booster)` is called at each boosting round (see `train`).
    """
    import mlflow

    validated, out = Path(validated), Path(out)
    table = pd.read_csv(validated / "supported_models.csv", keep_default_na=False)
    tp = TrainParams.from_params(params["train"])
    gate2 = ModelThresholds.from_params(params["gate2"])
    pricing = Pricing(
        frozenset(supported_keys(table)), gate2.withdraw_min_rows, gate2.withdraw_max_mape
    )
    if tp.distributed.enabled:
        model = train_dataset(validated / "clean.parquet", tp, say, pricing)
    else:
        clean = pd.read_parquet(validated / "clean.parquet")
        split = split_of(clean, tp.test_share, tp.calibration_share)
        say(f"training on {len(clean):,} clean rows from {validated}")
        model = train(clean, split, tp, progress=say, rounds=rounds, pricing=pricing)
    supported, withdrawn = model.priced, model.withdrawn
    version = "m-" + hashlib.sha256(model.point.model_to_string().encode()).hexdigest()[:12]
    lineage = {
        **snapshot_of(validated),
        "git_commit": git_commit(),
        "params_hash": params_hash(params),
    }
    metadata = {
        "model_version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "lineage": lineage,
        "split": {
            "test_share": tp.test_share,
            "calibration_share": tp.calibration_share,
            "rows": model.split_counts,
        },
        "interval": model.interval,
        "training_seconds": round(model.seconds, 2),
        "supported_models": len(supported),
        "withdrawn_models": sorted(withdrawn),
    }
    if model.distributed:
        metadata["distributed"] = model.distributed
    out.mkdir(parents=True, exist_ok=True)
    bundle_dir = out / "bundle"
    staging = out / "bundle.new"
    shutil.rmtree(staging, ignore_errors=True)
    write_bundle(
        staging,
        boosters=model.boosters,
        spec=model.spec,
        supported=[split_model_key(k) for k in supported],
        interval=model.interval,
        metadata=metadata,
    )
    shutil.rmtree(bundle_dir, ignore_errors=True)
    staging.rename(bundle_dir)
    model.model_errors.to_csv(out / "calibration_errors_by_model.csv", index=False)
    say(
        f"bundle {version}: {len(supported)} models priced, {len(withdrawn)} withdrawn "
        f"for calibration error; trained in {model.seconds:.1f}s"
    )
    registry.configure(paths)
    with mlflow.start_run(run_name=version) as run:
        mlflow.log_params(_flat("", {"train": params["train"], "gate1": params["gate1"]}))
        mlflow.set_tags({**{k: str(v) for k, v in lineage.items()}, "model_version": version})
        mlflow.set_tags(source_tags(lineage["git_commit"], "carprice train"))
        if model.distributed:
            layout = {k: v for k, v in model.distributed.items() if k != "partitioning"}
            mlflow.set_tags({f"distributed.{k}": str(v) for k, v in layout.items()})
        log_snapshot_input(validated, lineage)
        mlflow.log_metrics(
            {
                "training_seconds": model.seconds,
                "supported_models": len(supported),
                "withdrawn_models": len(withdrawn),
                "interval_offset": model.interval["offset_low"],
                **{f"rows_{k}": v for k, v in model.split_counts.items()},
            }
        )
        reg_version = registry.register(bundle_dir, run.info.run_id, {"model_version": version})
    registry.attach_report(reg_version, "gate1", validated)
    registry.set_alias(registry.CHALLENGER, reg_version)
    record = {
        "run_id": run.info.run_id,
        "registry_version": reg_version,
        "model_version": version,
        "bundle": str(bundle_dir),
        **({"distributed": model.distributed} if model.distributed else {}),
    }
    (out / "train.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    say(f"registered {registry.MODEL_NAME} version {reg_version} as {registry.CHALLENGER}")
    return record


def run_evaluation(
    validated: Path, model_dir: Path, out: Path, params: dict, paths: Paths, say: Progress
) -> GateResult:
    """Gate 2: score the challenger bundle (and the champion) on held-out rows."""
    import mlflow

    record = json.loads((Path(model_dir) / "train.json").read_text(encoding="utf-8"))
    challenger = Predictor(load_bundle(Path(record["bundle"])))
    source = snapshot_of(validated)["snapshot_source"]  # the error bounds differ by source
    thresholds = ModelThresholds.from_params(params["gate2"], source)
    meta = challenger.bundle.metadata["split"]
    registry.configure(paths)
    champ = registry.by_alias(registry.CHAMPION, paths.home / "registry-cache")
    champion = None
    if champ is None:
        say("no champion yet: the comparison with production is skipped")
    elif champ.version == record["registry_version"]:
        say("the challenger is the champion: the comparison with production is skipped")
    else:
        champion = Predictor(load_bundle(champ.path))
        say(f"champion: version {champ.version} ({champion.version})")
    settings = TrainParams.from_params(params["train"]).distributed
    if settings.enabled:
        with dask_client(settings) as client:
            say("gate 2 on Dask partitions")
            evaluation = evaluate_partitions(
                Path(record["bundle"]),
                (champ.path, champion.version) if champion else None,
                read_partitioned(Path(validated) / "clean.parquet", 2 * worker_count(client)),
                meta["test_share"],
                meta["calibration_share"],
            )
    else:
        clean = pd.read_parquet(Path(validated) / "clean.parquet")
        split = split_of(clean, meta["test_share"], meta["calibration_share"])
        evaluation = evaluate(challenger, champion, clean[split == TRAIN], clean[split == TEST])
    gate = check_model_gate(evaluation, thresholds)
    write_evaluation(Path(out), evaluation, gate, record, asdict(thresholds))
    with mlflow.start_run(run_id=record["run_id"]):
        mlflow.log_metrics({f"test_{k}": v for k, v in evaluation.metrics.items()})
        mlflow.log_metrics(
            {
                "test_priced_share": evaluation.priced_share,
                "baseline_mape": evaluation.baseline["mape"],
            }
        )
        mlflow.set_tags(
            {
                "gate2": "passed" if gate.passed else "failed",
                "champion_version": champ.version if champion else "none",
            }
        )
    registry.attach_report(record["registry_version"], "gate2", Path(out))
    registry.set_tags(record["registry_version"], {"gate2": "passed" if gate.passed else "failed"})
    return gate
