"""The model quality study: honest folds, every candidate measured, a curve and a floor."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import yaml

from carprice.config import Paths
from carprice.model.calibration import conformal_quantile
from carprice.model.cv import CURRENT, Variant, cv_rows, fold_plan, run_fold
from carprice.model.noise import same_car
from carprice.model.study import (
    GROUPED,
    MONOTONE,
    NONE,
    UNGROUPED,
    candidates,
    model_tokens,
    relist_counts,
    run_study,
    smoothed,
    smoothing,
)
from carprice.model.study_stage import EXPERIMENT, run_quality_study, settings_from
from carprice.model.study_tables import VARIANTS, interval
from carprice.model.train import TEST, split_of, train
from carprice.runtime.features import FeatureSpec
from carprice.runtime.listing import frame_model_keys
from tests.conftest import run_cli

FOLDS = 3


@pytest.fixture(scope="module")
def cars() -> pd.DataFrame:
    """3,000 clean simulated listings plus 150 relistings (same car, another price)."""
    from carprice.simulator.market import generate_listings

    frame = generate_listings(3_000, seed=5, when=dt.date(2026, 3, 2), dirty=False)
    frame = frame.drop(columns=["listing_id", "listed_at"]).drop_duplicates(ignore_index=True)
    frame["hp"] = frame["hp"].astype("int64")
    relisted = frame.sample(150, random_state=1).assign(price=lambda f: f["price"] + 500)
    frame = pd.concat([frame, relisted], ignore_index=True)
    frame.index = frame.index * 7 + 3  # a non-default index catches positional slips
    return frame


@pytest.fixture(scope="module")
def settings(params):
    quick = settings_from(params, quick=True)
    small = dataclasses.replace(quick.train, num_boost_round=60, quantile_boost_round=30)
    return dataclasses.replace(quick, train=small)


@pytest.fixture(scope="module")
def supported(cars) -> set[str]:
    counts = frame_model_keys(cars).value_counts()
    return set(counts[counts >= 10].index)


@pytest.fixture(scope="module")
def result(cars, supported, settings):
    return run_study(cars, supported, settings, folds=FOLDS)


def test_no_test_split_row_reaches_any_fold(result, cars):
    split = pd.Series(split_of(cars, 0.2, 0.15), index=cars.index)
    studied = result["fold_of"].index
    assert split[split == TEST].index.intersection(studied).empty
    assert set(studied) == set(split[split != TEST].index)  # and every other row does
    assert set(result["fold_of"]) == set(range(FOLDS))
    assert result["settings"]["rows"] == len(studied)


def test_a_relisted_car_lands_in_one_fold_and_ungrouped_folds_would_split_some(result, cars):
    rows = cars.loc[result["fold_of"].index]
    key = same_car(rows)
    assert result["relists"]["relisted_cars"] > 50
    assert result["fold_of"].groupby(key).nunique().max() == 1
    assert result["relists"]["cars_split_across_folds"] == 0
    by_row = fold_plan(rows, FOLDS, 42, grouped=False)
    assert relist_counts(rows, by_row)["cars_split_across_folds"] > 0


def test_the_candidate_table_holds_every_candidate_with_finite_numbers(result, settings):
    table = result["candidates"]
    grouped = table[table["folds"] == GROUPED]
    assert list(grouped["candidate"]) == [v.name for v in candidates(settings)]
    assert list(table[table["folds"] == UNGROUPED]["candidate"]) == [CURRENT]
    measures = ["mape", "mape_std", "median_ape", "priced", "coverage", "mape_delta_std"]
    assert np.isfinite(table[measures].to_numpy(float)).all()
    assert ((table["mape"] > 0) & (table["mape"] < 1)).all()
    assert all(len(f) == FOLDS for f in table["fold_mapes"])
    assert set(grouped["verdict"]) <= {"reference", "better", "worse", "within noise"}
    intervals = result["intervals"]
    assert list(intervals["interval"]) == list(VARIANTS)
    assert np.isfinite(intervals[["coverage", "interval_width"]].to_numpy(float)).all()


def test_the_learning_curve_trains_on_more_rows_at_each_step(result):
    curve = result["learning_curve"]
    assert curve["training_rows"].is_monotonic_increasing
    assert curve["training_rows"].nunique() == len(curve)
    assert curve["fraction"].iloc[-1] == 1.0
    current = result["candidates"].query("candidate == @CURRENT and folds == @GROUPED").iloc[0]
    assert curve["mape"].iloc[-1] == pytest.approx(current["mape"])
    assert curve["mape"].iloc[0] > curve["mape"].iloc[-1]  # fewer rows, worse prices


def test_the_monotone_candidate_is_monotone_on_a_probe(cars, settings):
    spec = FeatureSpec.fit(cars)
    x, y = spec.encode_frame(cars), np.log(cars["price"].to_numpy(float))
    monotone = next(v for v in candidates(settings) if v.name == "monotone").lgb
    params = {**settings.train.lgb, **monotone, "learning_rate": 0.2, "verbose": -1}
    data = lgb.Dataset(x, y, categorical_feature=spec.categorical_features)
    booster = lgb.train(params, data, num_boost_round=80)
    probe = cars.iloc[:40]
    for column, sign in (("mileage", -1), ("hp", 1)):
        grid = np.linspace(probe[column].min(), probe[column].max(), 12).round()
        preds = np.column_stack(
            [booster.predict(spec.encode_frame(probe.assign(**{column: v}))) for v in grid]
        )
        steps = np.diff(preds, axis=1) * sign
        assert (steps >= -1e-12).all(), f"price is not monotone in {column}"
    assert {k: v for k, v in MONOTONE.items() if k in ("mileage", "hp")} == {"mileage": -1, "hp": 1}


def test_model_names_split_into_a_family_and_a_trim_word():
    family, trim = model_tokens(pd.Series(["Golf Variant", "320", "C 220", "up!"]))
    assert family.tolist() == ["Golf", "3xx", "C", "up!"]
    assert trim.tolist() == ["Variant", NONE, "220", NONE]


def test_a_rare_model_leans_on_its_make_and_a_common_one_on_itself():
    frame = pd.DataFrame({"make": ["A"] * 41, "model": ["common"] * 40 + ["rare"]})
    y = np.r_[np.full(40, 9.0), 11.0]
    common, rare = smoothed(frame, y, weight=20.0)(frame.iloc[[0, 40]])[:, 0]
    assert common == pytest.approx(9.0, abs=0.1)
    assert 9.0 < rare < 9.5  # one row of 11.0 hardly moves it off the make


def test_out_of_fold_smoothing_never_encodes_a_row_with_its_own_price():
    frame = pd.DataFrame({"make": ["A"] * 30 + ["B"], "model": ["x"] * 30 + ["solo"]})
    y = np.r_[np.full(30, 9.0), 15.0]
    column, _, _ = smoothing(5.0, folds=5)(frame, y, 1)
    assert column[-1, 0] < 12.0  # without its own row, make B is unknown: the overall mean


def test_the_conformal_quantile_covers_its_level():
    scores = np.random.default_rng(0).normal(size=5_000)
    fresh = np.random.default_rng(1).normal(size=20_000)
    assert (fresh <= conformal_quantile(scores, 0.8)).mean() == pytest.approx(0.8, abs=0.02)
    assert conformal_quantile(np.array([]), 0.8) == 0.0


@pytest.mark.slow
def test_the_study_command_writes_its_report_and_logs_an_mlflow_run(
    cars, params, tmp_path, monkeypatch
):
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARPRICE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    listings = tmp_path / "listings.csv"
    cars.to_csv(listings, index=False)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params), encoding="utf-8")
    summary = run_quality_study(
        listings,
        tmp_path / "out",
        params_file,
        Paths.from_env(tmp_path),
        lambda _: None,
        quick=True,
        folds=2,
    )
    folder = tmp_path / "out" / summary["created_at"]
    saved = json.loads((folder / "study.json").read_text())
    names = {v.name for v in candidates(settings_from(params, quick=True))}
    assert {c["candidate"] for c in saved["candidates"]} == names
    assert [t["target"] for t in saved["targets"]][0] == "listings priced"
    text = (folder / "study.md").read_text()
    assert "## Learning curve" in text and "noise floor" in text
    run = MlflowClient().get_run(summary["run_id"])
    assert MlflowClient().get_experiment(run.info.experiment_id).name == EXPERIMENT
    current = next(c for c in saved["candidates"] if c["candidate"] == CURRENT)
    assert run.data.metrics[f"cv_mape.{CURRENT}"] == pytest.approx(current["mape"])


def test_cli_study_without_listings_is_a_one_sentence_error(tmp_path):
    done = run_cli("study", "--listings", str(tmp_path / "missing.csv"), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--listings" in lines[0]
    assert "Traceback" not in done.stderr


def test_calibrating_on_unseen_cars_ignores_relistings_of_training_cars():
    rng = np.random.default_rng(2)
    y = rng.normal(size=2_000)
    seen = np.arange(2_000) < 1_000  # these "relistings" sit exactly on their training price
    point = np.where(seen, y, 0.0)
    cal = pd.DataFrame({"y": y, "point": point, "q_low": point - 0.1, "q_high": point + 0.1})
    cal["unseen"] = ~seen
    held = pd.DataFrame({"log_point": np.zeros(5), "q_low": -0.1, "q_high": 0.1})
    low_all, high_all = interval(cal, held, 0.8, 100)
    low_new, high_new = interval(cal, held, 0.8, 100, **VARIANTS["cqr-unseen-cars"][1])
    assert (high_new - low_new)[0] > (high_all - low_all)[0] * 1.5
    expected = conformal_quantile(np.abs(y[~seen]) - 0.1, 0.8)
    assert high_new[0] == pytest.approx(0.1 + expected)


def test_the_current_candidate_of_a_fold_is_train_on_the_same_rows(cars, supported, settings):
    rows = cv_rows(cars, settings.train)
    held_mask = (fold_plan(rows, FOLDS, 42) == 1).to_numpy()
    held, cal = run_fold(rows, held_mask, Variant(CURRENT), settings.train, supported)
    fit = rows[~held_mask]
    model = train(fit, fit["side"].to_numpy(), settings.train)
    x = model.spec.encode_frame(rows[held_mask])
    assert np.array_equal(held["log_point"].to_numpy(), model.point.predict(x))
    assert np.array_equal(held["q_low"].to_numpy(), model.low.predict(x))
    assert np.array_equal(held["q_high"].to_numpy(), model.high.predict(x))
    offset = model.interval["offset_high"]
    assert np.allclose(
        np.log(held["high"]), np.maximum(model.high.predict(x) + offset, held["log_point"])
    )
    assert len(cal) == model.interval["calibration_rows"]
