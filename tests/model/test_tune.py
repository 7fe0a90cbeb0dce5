"""The hyper-parameter search: grouped folds on non-test rows, reproducible, logged, proposed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os

import pandas as pd
import pytest
import yaml

from carprice.config import PROJECT_ROOT, Paths
from carprice.model.train import TrainParams
from carprice.model.tune import TuneParams, search
from carprice.model.tune_stage import EXPERIMENT, params_diff, propose, run_tuning
from tests.conftest import run_cli

CANDIDATES, FOLDS = 3, 3
SPACE = {
    "learning_rate": {"low": 0.05, "high": 0.2, "log": True},
    "num_leaves": [7, 15, 31],
    "min_data_in_leaf": {"low": 2, "high": 30, "int": True},
}


@pytest.fixture(scope="module")
def cars() -> pd.DataFrame:
    """3,000 clean simulated listings (with a non-default index, to catch positional slips)."""
    from carprice.simulator.market import generate_listings

    frame = generate_listings(3_000, seed=5, when=dt.date(2026, 3, 2), dirty=False)
    frame = frame.drop(columns=["listing_id", "listed_at"]).drop_duplicates(ignore_index=True)
    frame["hp"] = frame["hp"].astype("int64")
    frame.index = frame.index * 7 + 3
    return frame


@pytest.fixture(scope="module")
def train_params(params) -> TrainParams:
    return TrainParams.from_params(params["train"])


@pytest.fixture(scope="module")
def tune_params() -> TuneParams:
    return TuneParams(
        seed=3, candidates=CANDIDATES, folds=FOLDS, space=SPACE, num_boost_round=30, n_jobs=2
    )


@pytest.fixture(scope="module")
def result(cars, train_params, tune_params):
    return search(cars, train_params, tune_params)


def test_the_table_holds_every_candidate_with_a_score_per_fold(result, train_params):
    table = result.table
    assert len(table) == CANDIDATES + 1  # the sampled ones and the current settings
    assert (table["source"] == "current").sum() == 1
    folds = table[[f"fold{k}_mape" for k in range(FOLDS)]]
    assert folds.notna().all().all() and (folds > 0).all().all()
    assert (table["mean_mape"] - folds.mean(axis=1)).abs().max() < 1e-12
    assert table["mean_mape"].is_monotonic_increasing and list(table["rank"]) == [1, 2, 3, 4]
    current = table[table["source"] == "current"].iloc[0]
    assert current["num_leaves"] == train_params.lgb["num_leaves"]
    assert {"std_mape", "mean_median_ape", "std_median_ape", "mean_fit_seconds"} <= set(table)


def test_the_same_seed_gives_the_same_table_and_another_seed_other_candidates(
    result, cars, train_params, tune_params
):
    again = search(cars, train_params, tune_params)
    columns = [c for c in result.table.columns if "fit_seconds" not in c]
    pd.testing.assert_frame_equal(result.table[columns], again.table[columns])
    other = search(cars, train_params, dataclasses.replace(tune_params, seed=4))
    assert not other.table[list(SPACE)].equals(result.table[list(SPACE)])


def test_the_proposed_diff_names_the_chosen_values(result):
    text = (PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8")
    new = propose(text, result.chosen)
    assert yaml.safe_load(new)["train"]["lgb"] == result.chosen
    diff = params_diff(text, new, "params.yaml")
    changed = [k for k in SPACE if result.chosen[k] != yaml.safe_load(text)["train"]["lgb"][k]]
    assert changed, "the small search should not pick exactly the shipped settings"
    added = [line for line in diff.splitlines() if line.startswith("+    ")]
    for key in changed:
        assert f"+    {key}: {result.chosen[key]}" in added
    assert len(added) == len(changed)
    assert propose(new, result.chosen) == new  # nothing left to change


def test_a_params_file_without_train_lgb_is_refused():
    with pytest.raises(ValueError, match="train.lgb"):
        propose("gate2:\n  max_mape: 0.1\n", {"num_leaves": 7})


@pytest.fixture(scope="module")
def validated(cars, tmp_path_factory):
    """A gate 1 output folder holding the simulated cars."""
    folder = tmp_path_factory.mktemp("validated")
    cars.reset_index(drop=True).to_parquet(folder / "clean.parquet")
    (folder / "data_report.json").write_text(json.dumps({"source": "simulated.csv"}))
    return folder


def small_params_file(path, params, tune_params):
    tune = {**dataclasses.asdict(tune_params), "candidates": 5, "folds": 5}
    path.write_text(yaml.safe_dump({**params, "tune": tune}, sort_keys=False), encoding="utf-8")
    return path


def test_the_search_is_logged_to_its_own_mlflow_experiment(
    validated, params, tune_params, tmp_path, monkeypatch
):
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARPRICE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params_file = small_params_file(tmp_path / "params.yaml", params, tune_params)
    before = params_file.read_text()
    summary = run_tuning(
        validated,
        tmp_path / "reports",
        params_file,
        Paths.from_env(tmp_path),
        lambda _: None,
        candidates=2,
        folds=2,
    )
    folder = tmp_path / "reports" / summary["created_at"]
    table = pd.read_csv(folder / "cv_table.csv")
    assert len(table) == 3 and "fold1_mape" in table and "fold2_mape" not in table
    assert (folder / "params.diff").read_text() == summary["diff"]
    assert "CV MAPE" in (folder / "tune.html").read_text()
    assert params_file.read_text() == before  # proposed, not applied
    run = MlflowClient().get_run(summary["run_id"])
    experiment = MlflowClient().get_experiment(run.info.experiment_id)
    assert experiment.name == EXPERIMENT
    assert run.data.metrics["best_cv_mape"] == pytest.approx(table["mean_mape"].min())
    assert run.data.metrics["current_cv_mape"] <= table["mean_mape"].max()
    assert run.data.params["tune.used.folds"] == "2"
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "tune")}
    assert "tune/cv_table.csv" in artifacts
    assert not (tmp_path / "mlruns").exists()
    assert experiment.artifact_location.startswith((tmp_path / "home").as_uri())


def test_cli_tune_writes_the_proposal_only_when_asked(validated, params, tune_params, tmp_path):
    env = {**os.environ, "CARPRICE_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    params_file = small_params_file(tmp_path / "params.yaml", params, tune_params)
    args = ["tune", "--data", str(validated), "--params", str(params_file)]
    args += ["--out", str(tmp_path / "out"), "--candidates", "2", "--folds", "2", "--write"]
    done = run_cli(*args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "tuning" in done.stderr and "candidate 3/3" in done.stderr
    chosen = json.loads(next((tmp_path / "out").glob("*/chosen.json")).read_text())
    assert chosen["changes_params"] and "+++ params.yaml (proposed)" in done.stdout
    assert yaml.safe_load(params_file.read_text())["train"]["lgb"] == chosen["chosen_lgb"]


def test_cli_tune_without_data_is_a_one_sentence_error(tmp_path):
    done = run_cli("tune", "--data", str(tmp_path / "missing"), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--data" in lines[0] and "does not exist" in lines[0]
    assert "Traceback" not in done.stderr


def test_cli_tune_names_a_malformed_search_space_entry(validated, params, tmp_path):
    bad = {**params, "tune": {"seed": 1, "candidates": 2, "folds": 2, "space": {"num_leaves": 7}}}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(bad), encoding="utf-8")
    done = run_cli("tune", "--data", str(validated), "--params", str(params_file), cwd=tmp_path)
    assert done.returncode == 2
    assert "tune.space.num_leaves: expected a list" in done.stderr
    assert "Traceback" not in done.stderr
