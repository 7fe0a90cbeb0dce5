"""The quality-study stage: clean the listings like gate 1, run the study, write and log it.

The report folder `<out>/<UTC stamp>/` holds study.json (every table and setting), study.md
(the tables for people) and the tables as CSV; the run is logged to MLflow's
`carprice-quality-study` experiment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import yaml

from carprice.config import Paths, params_hash
from carprice.data.gate import DataThresholds
from carprice.data.ingest import read_listings
from carprice.data.rules import ValidationRules, validate
from carprice.data.sufficiency import sufficiency
from carprice.model import registry
from carprice.model.gate import ModelThresholds
from carprice.model.lineage import git_commit, source_tags
from carprice.model.noise import BoundsRule
from carprice.model.study import GROUPED, StudyResult, StudySettings, run_study
from carprice.model.study_report import markdown, target_rows
from carprice.model.train import TrainParams, supported_keys
from carprice.model.tune import TuneParams

EXPERIMENT = "carprice-quality-study"
Say = Callable[[str], None]
# --quick: a small, fast version for tests and trials, not for conclusions.
QUICK = {
    "num_boost_round": 200,
    "quantile_boost_round": 60,
    "bagging_members": 2,
    "fractions": (0.25, 0.5),
}


def settings_from(params: dict, quick: bool) -> StudySettings:
    """Return the study settings: the shipped training parameters (smaller with `quick`)."""
    train = TrainParams.from_params(params["train"])
    gate2 = ModelThresholds.from_params(params["gate2"])
    settings = StudySettings(train, gate2, BoundsRule.from_params(params["gate2"]))
    if not quick:
        return settings
    faster = {**train.lgb, "learning_rate": 0.1}  # 200 rounds at 0.02 would stop far too early
    rounds = {k: QUICK[k] for k in ("num_boost_round", "quantile_boost_round")}
    quick_train = dataclasses.replace(train, lgb=faster, **rounds)
    knobs = {k: v for k, v in QUICK.items() if k not in rounds}
    return dataclasses.replace(settings, train=quick_train, **knobs)


def clean_listings(listings: Path, params: dict, say: Say):
    """Read listings and apply gate 1's rules; return clean rows and supported model keys."""
    raw, _ = read_listings(Path(listings), progress=say)
    result = validate(raw, ValidationRules.from_params(params["validation"]))
    gate1 = DataThresholds.from_params(params["gate1"])
    table = sufficiency(result.clean, result.quarantine, gate1.min_rows_per_model)
    say(f"gate 1 rules: {len(result.clean):,} clean rows, {len(result.quarantine):,} quarantined")
    return result.clean, supported_keys(table)


def run_quality_study(
    listings: Path,
    out: Path,
    params_file: Path,
    paths: Paths,
    say: Say,
    *,
    quick: bool = False,
    folds: int | None = None,
    jobs: int = 1,
    command: str = "carprice study",
    steps=None,
) -> dict:
    """Run the study on a listings file or folder; return the report's summary."""
    params = yaml.safe_load(Path(params_file).read_text(encoding="utf-8"))
    folds = folds or (3 if quick else TuneParams.from_params(params["tune"]).folds)
    settings = settings_from(params, quick)
    clean, supported = clean_listings(listings, params, say)
    say(f"study: {folds} grouped folds, {jobs} fit(s) at a time, quick={quick}")
    result = run_study(clean, supported, settings, folds=folds, jobs=jobs, steps=steps)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(out) / stamp
    folder.mkdir(parents=True, exist_ok=True)
    summary = _summary(result, listings, stamp, quick, command)
    (folder / "study.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (folder / "study.md").write_text(markdown(result, command), encoding="utf-8")
    for name in ("candidates", "intervals", "curve"):
        getattr(result, name).to_csv(folder / f"{name}.csv", index=False)
    summary["run_id"] = _log_run(result, params, folder, paths)
    summary["folder"] = str(folder)
    return summary


def _summary(result: StudyResult, listings, stamp: str, quick: bool, command: str) -> dict:
    return {
        "created_at": stamp,
        "command": command,
        "listings": str(listings),
        "quick": quick,
        "seconds": round(result.seconds, 1),
        "settings": result.settings,
        "candidates": result.candidates.to_dict(orient="records"),
        "intervals": result.intervals.to_dict(orient="records"),
        "learning_curve": result.curve.to_dict(orient="records"),
        "noise_floor": dataclasses.asdict(result.floor),
        "current_on_floor_rows": result.model_on_floor_rows,
        "relists": result.relists,
        "targets": target_rows(result),
    }


def _experiment(paths: Paths) -> str:
    import mlflow

    uri = registry.configure(paths)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    direct = uri.split(":", 1)[0].split("+", 1)[0] in registry.DATABASES
    location = paths.artifacts.as_uri() if direct else None
    return mlflow.create_experiment(EXPERIMENT, artifact_location=location)


def _log_run(result: StudyResult, params: dict, folder: Path, paths: Paths) -> str:
    """Log the study as a run of its own experiment; return the run id."""
    import mlflow

    commit = git_commit()
    grouped = result.candidates[result.candidates["folds"] == GROUPED]
    metrics = {f"cv_mape.{r.candidate}": r.mape for r in grouped.itertuples()}
    metrics |= {f"cv_median_ape.{r.candidate}": r.median_ape for r in grouped.itertuples()}
    metrics |= {f"coverage.{r.interval}": r.coverage for r in result.intervals.itertuples()}
    metrics |= {f"curve_mape.{r.fraction:g}": r.mape for r in result.curve.itertuples()}
    metrics |= {"noise_floor_mape": result.floor.mape, "study_seconds": result.seconds}
    with mlflow.start_run(experiment_id=_experiment(paths), run_name=folder.name) as run:
        mlflow.log_params({k: str(v) for k, v in result.settings.items()})
        mlflow.set_tags({"params_hash": params_hash(params), "git_commit": commit})
        mlflow.set_tags(source_tags(commit, "carprice study"))
        mlflow.log_metrics({k.replace("+", "_"): float(v) for k, v in metrics.items()})
        mlflow.log_artifacts(str(folder), "study")
    return run.info.run_id
