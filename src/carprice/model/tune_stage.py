"""The tune stage: run the search on gate 1's clean rows, write its report, log it to MLflow.

The report folder holds the CV table (cv_table.csv), a page for people (tune.html), the chosen
settings (chosen.json) and the proposed change of params.yaml's `train.lgb` block as a unified
diff (params.diff). params.yaml itself changes only when the caller asks for it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import html
import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

from carprice import htmlreport as hr
from carprice.config import Paths, params_hash
from carprice.model import registry
from carprice.model.cv import CURRENT
from carprice.model.lineage import git_commit, log_snapshot_input, snapshot_of, source_tags
from carprice.model.train import TrainParams
from carprice.model.tune import TuneParams, search

EXPERIMENT = "carprice-tuning"
Say = Callable[[str], None]


def _yaml_value(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).splitlines()[0].removesuffix(" ...")


def propose(text: str, chosen: dict) -> str:
    """Return params.yaml text with `train.lgb` set to `chosen`, comments and layout kept."""
    lines = text.splitlines(keepends=True)
    try:
        top = next(i for i, line in enumerate(lines) if re.match(r"train:\s*(#.*)?$", line))
        start = next(
            i for i in range(top + 1, len(lines)) if re.match(r"  lgb:\s*(#.*)?$", lines[i])
        )
    except StopIteration as err:
        raise ValueError("params.yaml has no train.lgb block to update") from err
    end = start + 1
    while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
        end += 1
    while not lines[end - 1].strip():  # trailing blank lines belong to what follows
        end -= 1
    current = yaml.safe_load(text)["train"]["lgb"]
    block, seen = lines[start + 1 : end], set()
    for i, line in enumerate(block):
        match = re.match(r"( {4})([A-Za-z_0-9]+):( *)([^#\n]*?)( *#.*)?\n?$", line)
        if not match or match[2] not in chosen:
            continue
        key = match[2]
        seen.add(key)
        if current.get(key) == chosen[key]:
            continue
        new_line = f"    {key}: {_yaml_value(chosen[key])}"
        if match[5]:  # keep the comment in its column where the value leaves room
            column = match.start(5) + len(match[5]) - len(match[5].lstrip())
            new_line += " " * max(1, column - len(new_line)) + match[5].strip()
        block[i] = new_line + "\n"
    block += [f"    {k}: {_yaml_value(v)}\n" for k, v in chosen.items() if k not in seen]
    new = "".join(lines[: start + 1] + block + lines[end:])
    if yaml.safe_load(new)["train"]["lgb"] != chosen:
        raise ValueError("could not rewrite params.yaml's train.lgb block safely")
    return new


def params_diff(old: str, new: str, name: str) -> str:
    """Return a unified diff of two params.yaml texts ('' when equal)."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{name} (current)",
            tofile=f"{name} (proposed)",
        )
    )


def run_tuning(
    validated: Path,
    out: Path,
    params_file: Path,
    paths: Paths,
    say: Say,
    *,
    candidates: int | None = None,
    folds: int | None = None,
    write: bool = False,
    steps=None,
) -> dict:
    """Search `train.lgb` settings on gate 1's clean rows; return the report's summary."""
    params_file = Path(params_file)
    text = params_file.read_text(encoding="utf-8")
    params = yaml.safe_load(text)
    if not isinstance(params, dict) or not isinstance(params.get("tune"), dict):
        raise ValueError(f"{params_file} has no tune section (a mapping of search settings)")
    section = dict(params["tune"])
    section.update({k: v for k, v in (("candidates", candidates), ("folds", folds)) if v})
    tune, train = TuneParams.from_params(section), TrainParams.from_params(params["train"])
    clean = pd.read_parquet(Path(validated) / "clean.parquet")
    say(
        f"tuning on the non-test rows of {len(clean):,} clean rows from {validated}: "
        f"{tune.candidates} sampled candidates + the current settings, {tune.folds} grouped folds"
    )
    result = search(clean, train, tune, steps=steps)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(out) / stamp
    folder.mkdir(parents=True, exist_ok=True)
    proposed = propose(text, result.chosen)
    diff = params_diff(text, proposed, params_file.name)
    table = result.table
    best, current = table.iloc[0], table[table["source"] == CURRENT].iloc[0]
    scores = {
        f"{name}_cv_{measure}": float(row[f"mean_{measure}"])
        for name, row in (("best", best), ("current", current))
        for measure in ("mape", "median_ape")
    }
    summary = {
        "created_at": stamp,
        "data": str(validated),
        "candidates": tune.candidates,
        "folds": tune.folds,
        **result.settings,
        "seconds": round(result.seconds, 1),
        "best": {"candidate": int(best["candidate"]), "source": best["source"]},
        **scores,
        "current_rank": int(current["rank"]),
        "changes_params": bool(diff),
        "chosen_lgb": result.chosen,
    }
    table.to_csv(folder / "cv_table.csv", index=False)
    (folder / "params.diff").write_text(diff, encoding="utf-8")
    (folder / "chosen.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (folder / "tune.html").write_text(_page(table, summary, diff), encoding="utf-8")
    metrics = {**scores, "rows": result.settings["rows"], "search_seconds": result.seconds}
    summary["run_id"] = _log_run(tune, params, result.chosen, metrics, validated, folder, paths)
    if write and diff:
        params_file.write_text(proposed, encoding="utf-8")
        say(f"{params_file}: train.lgb updated with the chosen settings")
    summary.update(folder=str(folder), diff=diff)
    return summary


def _page(table: pd.DataFrame, summary: dict, diff: str) -> str:
    verdict = (
        f"best: candidate {summary['best']['candidate']} ({summary['best']['source']}), "
        f"CV MAPE {summary['best_cv_mape']:.2%} vs {summary['current_cv_mape']:.2%} for the "
        f"current settings (rank {summary['current_rank']} of {len(table)})"
    )
    labels = [f"#{c} {s}" for c, s in zip(table["candidate"], table["source"], strict=True)]
    chart = hr.barh(labels, table["mean_mape"] * 100, "CV MAPE by candidate", xlabel="MAPE (%)")
    shown = html.escape(diff) if diff else "(the current settings are the best: no change)"
    about = [
        ("data", summary["data"]),
        ("rows", f"{summary['rows']:,} (train + calibration; test rows excluded)"),
        ("cars (groups)", f"{summary['groups']:,}"),
        ("folds", str(summary["folds"])),
        ("boosting rounds", str(summary["num_boost_round"])),
        ("created", summary["created_at"]),
    ]
    sections = [
        ("Candidates, best first", hr.table(table.itertuples(index=False), list(table.columns))),
        ("CV error", chart),
        ("Proposed params.yaml change", f"<pre>{shown}</pre>"),
    ]
    return hr.page("carprice hyper-parameter search", (True, verdict), sections, about=about)


def _log_run(tune, params, chosen, metrics, validated, folder: Path, paths: Paths) -> str:
    """Log the search as a run of its own experiment; return the run id."""
    import mlflow

    registry.configure(paths, EXPERIMENT)
    lineage = {**snapshot_of(validated), "params_hash": params_hash(params)}
    commit = git_commit()
    with mlflow.start_run(run_name=folder.name) as run:
        mlflow.log_params({f"tune.{k}": str(v) for k, v in params["tune"].items()})
        mlflow.log_params({"tune.used.candidates": tune.candidates, "tune.used.folds": tune.folds})
        mlflow.log_params({f"chosen.{k}": str(v) for k, v in chosen.items()})
        mlflow.set_tags({**{k: str(v) for k, v in lineage.items()}, "git_commit": commit})
        mlflow.set_tags(source_tags(commit, "carprice tune"))
        log_snapshot_input(validated, lineage)
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(folder), "tune")
    return run.info.run_id
