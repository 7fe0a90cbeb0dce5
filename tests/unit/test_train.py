"""Training: a stable split, determinism and an honest interval."""

from __future__ import annotations

import numpy as np
import pandas as pd

from carprice.data import schema
from carprice.model.calibration import withdrawn_models
from carprice.model.noise import MILEAGE_BUCKET_KM, same_car
from carprice.model.train import CALIBRATION, TEST, TRAIN, split_of, train
from tests.conftest import small_params


def test_a_row_keeps_its_side_whatever_the_order_and_the_other_rows(market_frame):
    split = split_of(market_frame, 0.2, 0.15)
    shuffled = market_frame.sample(frac=1, random_state=3)
    again = split_of(shuffled, 0.2, 0.15)
    assert (again == split[shuffled.index.to_numpy()]).all()
    subset = split_of(market_frame.iloc[:500], 0.2, 0.15)
    assert (subset == split[:500]).all()


def test_a_new_listing_field_moves_no_row_between_train_and_test(market_frame, monkeypatch):
    split = split_of(market_frame, 0.2, 0.15)
    colour = np.random.default_rng(0).choice(["red", "blue", None], size=len(market_frame))
    wider = market_frame.assign(colour=colour)
    monkeypatch.setattr(schema, "CANONICAL_COLUMNS", (*schema.CANONICAL_COLUMNS, "colour"))
    assert (split_of(wider, 0.2, 0.15) == split).all()
    assert (split_of(wider.assign(hp=wider["hp"] + 1), 0.2, 0.15) != split).mean() > 0.3


def test_all_listings_of_one_car_fall_on_one_side(market_frame):
    split = split_of(market_frame, 0.2, 0.15)
    cars = same_car(market_frame).to_numpy()
    relisted = pd.Series(cars).duplicated(keep=False).to_numpy()
    assert relisted.sum() >= 1000, "too few cars listed twice to test the split"
    sides = pd.Series(split).groupby(cars).nunique()
    assert (sides == 1).all(), f"{(sides > 1).sum()} cars sit on two sides of the split"
    unseen = np.isin(cars, cars[split == TRAIN], invert=True)
    assert unseen[split != TRAIN].all()  # calibration and test rows are cars no booster saw


def test_a_relisting_of_a_car_keeps_its_side(market_frame):
    split = split_of(market_frame, 0.2, 0.15)
    bucket = market_frame["mileage"] // MILEAGE_BUCKET_KM * MILEAGE_BUCKET_KM
    relisting = market_frame.assign(
        price=market_frame["price"] * 0.9, mileage=bucket + MILEAGE_BUCKET_KM - 1, offerType="Used"
    )
    assert (split_of(relisting, 0.2, 0.15) == split).all()


def test_the_split_shares_are_close_to_the_parameters(market_frame):
    split = split_of(market_frame, 0.2, 0.15)
    assert abs((split == TEST).mean() - 0.2) < 0.02
    assert abs((split == CALIBRATION).mean() - 0.15) < 0.02
    assert abs((split == TRAIN).mean() - 0.65) < 0.02


def test_training_twice_gives_the_same_model(market_frame, params, small_model):
    model, split = small_model
    tp = small_params(params)
    again = train(market_frame, split, tp)
    assert again.point.model_to_string() == model.point.model_to_string()
    assert again.interval == model.interval


def test_the_calibrated_interval_covers_about_its_level_on_test_rows(market_frame, small_model):
    model, split = small_model
    test = market_frame[split == TEST]
    x = model.spec.encode_frame(test)
    y = np.log(test["price"].to_numpy())
    low = model.low.predict(x) - model.interval["offset_low"]
    high = model.high.predict(x) + model.interval["offset_high"]
    coverage = ((y >= low) & (y <= high)).mean()
    assert 0.76 <= coverage <= 0.84, coverage


def test_models_far_off_on_calibration_rows_are_withdrawn(small_model):
    model, _ = small_model
    errors = model.model_errors.copy()
    errors.loc[0, ["rows", "mape"]] = [10, 0.9]
    withdrawn = withdrawn_models(errors, min_rows=5, max_mape=0.3)
    assert f"{errors.loc[0, 'make']}|{errors.loc[0, 'model']}" in withdrawn
    assert len(withdrawn) < len(errors) / 10
