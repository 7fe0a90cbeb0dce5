"""The conformal interval is calibrated on the rows of the car models the bundle prices."""

from __future__ import annotations

import numpy as np
import pytest

from carprice.model.calibration import Pricing, conformal_quantile, model_errors
from carprice.model.train import CALIBRATION, LocalFitter, train
from carprice.runtime.listing import frame_model_keys
from tests.conftest import small_params


def test_the_offsets_come_from_the_calibration_rows_of_priced_models_only(
    market_frame, small_model, params
):
    model, split = small_model
    keys = frame_model_keys(market_frame)
    counts = keys.value_counts()
    supported = frozenset(counts.index[counts >= 60])  # leaves the rarer models unpriced
    pricing = Pricing(supported, withdraw_min_rows=10, withdraw_max_mape=0.25)
    priced_model = train(market_frame, split, small_params(params), pricing=pricing)

    rows = LocalFitter(market_frame, split).calibrate(model.calibrated_point, model.low, model.high)
    assert model_errors(rows).equals(priced_model.model_errors)
    row_keys = frame_model_keys(rows)
    withdrawn = set(model_errors(rows).query("rows >= 10 and mape > 0.25").pipe(frame_model_keys))
    assert priced_model.withdrawn == withdrawn
    assert priced_model.priced == set(supported) - withdrawn
    mine = row_keys.isin(priced_model.priced).to_numpy()
    assert 0 < mine.sum() < int((split == CALIBRATION).sum())  # some calibration rows left out
    assert priced_model.interval["calibration_rows"] == int(mine.sum())
    offset = conformal_quantile(rows["score"].to_numpy()[mine], 0.8)
    assert priced_model.interval["offset_low"] == pytest.approx(offset, abs=1e-12)
    assert priced_model.interval["offset_high"] == pytest.approx(offset, abs=1e-12)
    # Without pricing every calibration row counts: the rows left out above change the offset.
    everyone = conformal_quantile(rows["score"].to_numpy(), 0.8)
    assert model.interval["offset_low"] == pytest.approx(everyone, abs=1e-12)
    assert not np.isclose(offset, everyone)
