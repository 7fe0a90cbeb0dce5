"""The quality-study stage: clean the listings like gate 1, run the study, write and log it.

The report folder `<out>/<UTC stamp>/` holds study.json (every table and setting), study.md
(the tables for people, and the model-quality targets judged on the current model's
cross-validated numbers) and the tables as CSV; the run is logged to MLflow's
`carprice-quality-study` experiment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

from carprice.config import Paths, params_hash
from carprice.data.gate import DataThresholds, data_gate
from carprice.data.ingest import read_listings
from carprice.data.rules import ValidationRules, validate
from carprice.model import registry
from carprice.model.calibration import supported_keys
from carprice.model.cv import CURRENT
from carprice.model.gate import ModelThresholds
from carprice.model.lineage import git_commit, source_tags
from carprice.model.noise import BoundsRule
from carprice.model.study import GROUPED, StudySettings, run_study
from carprice.model.train import TrainParams
from carprice.model.tune import TuneParams

EXPERIMENT = "carprice-quality-study"
Say = Callable[[str], None]
# The model-quality targets, on held-out real listings: (name, measure, low, high).
TARGETS = (
    ("listings priced", "priced", 0.95, None),
    ("MAPE", "mape", None, 0.090),
    ("median APE", "median_ape", None, 0.069),
    ("80% interval coverage", "coverage", 0.78, 0.82),
)


def settings_from(params: dict, quick: bool) -> StudySettings:
    """Return the study settings: the shipped training parameters, or with `quick` a small, fast
    version for tests and trials, not for conclusions."""
    train, gate2 = TrainParams.from_params(params["train"]), params["gate2"]
    knobs = {"bagging_members": 2, "fractions": (0.25, 0.5)} if quick else {}
    if quick:  # 200 rounds at 0.02 would stop far too early
        faster = {**train.lgb, "learning_rate": 0.1}
        train = dataclasses.replace(train, lgb=faster, num_boost_round=200, quantile_boost_round=60)
    thresholds, bounds = ModelThresholds.from_params(gate2), BoundsRule.from_params(gate2)
    return StudySettings(train, thresholds, bounds, **knobs)


def clean_listings(listings: Path, params: dict, say: Say):
    """Read listings and apply gate 1's rules; return clean rows and supported model keys."""
    raw, _ = read_listings(Path(listings), progress=say)
    result = validate(raw, ValidationRules.from_params(params["validation"]))
    table, _ = data_gate(result, DataThresholds.from_params(params["gate1"]))
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
    tables = ("candidates", "intervals", "learning_curve")
    summary = {
        "created_at": stamp,
        "command": command,
        "listings": str(listings),
        "quick": quick,
        "seconds": round(result["seconds"], 1),
        "settings": result["settings"],
        **{name: result[name].to_dict(orient="records") for name in tables},
        "noise_floor": dataclasses.asdict(result["noise_floor"]),
        **{name: result[name] for name in ("current_on_floor_rows", "relists")},
    }
    summary["targets"] = target_rows(summary)
    (folder / "study.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (folder / "study.md").write_text(markdown(summary), encoding="utf-8")
    for name, csv in zip(tables, ("candidates", "intervals", "curve"), strict=True):
        result[name].to_csv(folder / f"{csv}.csv", index=False)
    summary["run_id"] = _log_run(summary, result["seconds"], params, folder, paths)
    summary["folder"] = str(folder)
    return summary


def target_rows(summary: dict) -> list[dict]:
    """Judge the current model's CV numbers against the model-quality targets."""
    out, rows = [], summary["candidates"]
    current = next(c for c in rows if c["candidate"] == CURRENT and c["folds"] == GROUPED)
    for name, measure, low, high in TARGETS:
        value = float(current[measure])
        met = (low is None or value >= low) and (high is None or value <= high)
        wanted = " to ".join(_pct(v, 0 if v in (0.95, 0.78, 0.82) else 1) for v in (low, high) if v)
        wanted = (">= " if high is None else "<= " if low is None else "") + wanted
        out.append({"target": name, "wanted": wanted, "measured": value, "met": met})
    return out


def _pct(value, digits: int = 2) -> str:
    return "n/a" if pd.isna(value) else f"{100 * value:.{digits}f}%"


def _pm(row: dict, name: str) -> str:
    return f"{_pct(row[name])} ± {_pct(row[f'{name}_std'])}"


def markdown(summary: dict) -> str:
    """Return the study report as markdown."""
    s, floor, rel = summary["settings"], summary["noise_floor"], summary["relists"]
    on_floor = summary["current_on_floor_rows"]
    lines = [
        "# Model quality study",
        "",
        f"Command: `{summary['command']}`  ",
        f"{s['rows']:,} train + calibration rows ({s['cars']:,} cars), {s['folds']} folds grouped "
        f"by car; test-split rows excluded. Wall time {summary['seconds']:.0f} s.",
        "",
        "## Point-model candidates",
        "",
        "| candidate | folds | CV MAPE | median APE | priced | 80% coverage | vs current "
        "(± fold noise) | verdict | worst segment coverage | fit s/fold |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["candidates"]:
        delta = f"{100 * r['mape_delta']:+.2f} ± {100 * r['mape_delta_std']:.2f} pts"
        lines.append(
            f"| {r['candidate']} | {r['folds']} | {_pm(r, 'mape')} | {_pm(r, 'median_ape')} | "
            f"{_pct(r['priced'], 1)} | {_pct(r['coverage'], 1)} | {delta} | {r['verdict']} | "
            f"{_pct(r['worst_segment_coverage'], 1)} {r['worst_segment']} | "
            f"{r['fit_seconds']:.1f} |"
        )
    lines += ["", "## Interval variants (around the current point model)", ""]
    lines += [
        "| interval | 80% coverage | median width | worst segment coverage | what |",
        "|---|---|---|---|---|",
    ]
    for r in summary["intervals"]:
        lines.append(
            f"| {r['interval']} | {_pm(r, 'coverage')} | {_pm(r, 'interval_width')} | "
            f"{_pct(r['worst_segment_coverage'], 1)} {r['worst_segment']} | {r['about']} |"
        )
    lines += ["", "## Learning curve (current settings)", ""]
    lines += ["| share of training rows | rows | CV MAPE | median APE |", "|---|---|---|---|"]
    for r in summary["learning_curve"]:
        lines.append(
            f"| {r['fraction']:.0%} | {int(r['training_rows']):,} | {_pm(r, 'mape')} | "
            f"{_pm(r, 'median_ape')} |"
        )
    lines += [
        "",
        "## Noise floor and relisted cars",
        "",
        f"Identical-spec noise floor on these rows: MAPE {_pct(floor['mape'])}, median APE "
        f"{_pct(floor['median_ape'])} ({floor['rows']:,} listings in {floor['groups']:,} groups). "
        f"The current model on the priced ones among them (CV): MAPE "
        f"{_pct(on_floor.get('mape'))}, median APE {_pct(on_floor.get('median_ape'))} "
        f"({on_floor.get('rows', 0):,} rows).",
        "",
        f"Cars listed more than once (same make, model, fuel, gear, year, hp, mileage within "
        f"one 10,000 km bucket): {rel['relisted_cars']:,} cars "
        f"in {rel['relisted_rows']:,} of {rel['rows']:,} rows; {rel['cars_with_changed_price']:,}"
        f" with more than one price; split across grouped folds: "
        f"{rel['cars_split_across_folds']}.",
        "",
        "## Targets (current model, grouped CV)",
        "",
        "| target | wanted | measured | met |",
        "|---|---|---|---|",
    ]
    for t in summary["targets"]:
        lines.append(
            f"| {t['target']} | {t['wanted']} | {_pct(t['measured'])} | "
            f"{'met' if t['met'] else 'not met'} |"
        )
    return "\n".join(lines) + "\n"


def _log_run(summary: dict, seconds: float, params: dict, folder: Path, paths: Paths) -> str:
    """Log the study as a run of its own experiment; return the run id."""
    import mlflow

    registry.configure(paths, EXPERIMENT)
    commit = git_commit()
    grouped = [c for c in summary["candidates"] if c["folds"] == GROUPED]
    metrics = {f"cv_mape.{c['candidate']}": c["mape"] for c in grouped}
    metrics |= {f"cv_median_ape.{c['candidate']}": c["median_ape"] for c in grouped}
    metrics |= {f"coverage.{r['interval']}": r["coverage"] for r in summary["intervals"]}
    metrics |= {f"curve_mape.{r['fraction']:g}": r["mape"] for r in summary["learning_curve"]}
    metrics |= {"noise_floor_mape": summary["noise_floor"]["mape"], "study_seconds": seconds}
    with mlflow.start_run(run_name=folder.name) as run:
        mlflow.log_params({k: str(v) for k, v in summary["settings"].items()})
        mlflow.set_tags({"params_hash": params_hash(params), "git_commit": commit})
        mlflow.set_tags(source_tags(commit, "carprice study"))
        mlflow.log_metrics({k.replace("+", "_"): float(v) for k, v in metrics.items()})
        mlflow.log_artifacts(str(folder), "study")
    return run.info.run_id
