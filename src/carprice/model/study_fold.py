"""One fold of the quality study: the pipeline's training on K-1 folds, every candidate scored.

Within the training folds each row keeps the side train.py's `split_of` gave it: `train` rows
fit the boosters, `calibration` rows set the interval offsets and decide which car models are
withdrawn, then the point model is refitted on both (as `make retrain` ships it). The candidates
change only the point model (or only the interval), so all are scored on the same priced rows.
"""

from __future__ import annotations

import time

import lightgbm as lgb
import numpy as np
import pandas as pd

from carprice.model.study_candidates import CURRENT, POINT_CANDIDATES, FoldData, StudySettings
from carprice.model.study_interval import CURRENT_INTERVAL, VARIANTS, Scores, interval
from carprice.model.train import CALIBRATION, TRAIN, model_errors, withdrawn_models
from carprice.model.tune import car_groups
from carprice.runtime.features import FeatureSpec
from carprice.runtime.listing import frame_model_keys


def _quantiles(d: FoldData, tr: np.ndarray, x_sets: list[np.ndarray]) -> list[np.ndarray]:
    s = d.settings
    alpha = (1 - s.interval_level) / 2
    out = []
    for q in (alpha, 1 - alpha):
        params = {**s.quantile_lgb, "objective": "quantile", "alpha": q, "seed": s.seed}
        params.update(deterministic=True, verbose=-1, num_threads=1)
        data = lgb.Dataset(
            d.x_fit[tr], d.y_fit[tr], categorical_feature=d.spec.categorical_features
        )
        booster = lgb.train(params, data, num_boost_round=s.quantile_boost_round)
        out.append([booster.predict(x) for x in x_sets])
    return out


def run_fold(
    frame: pd.DataFrame,
    held_mask: np.ndarray,
    supported: set[str],
    settings: StudySettings,
    candidates: tuple[str, ...],
    learning_curve: bool,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Train on the rows outside `held_mask`, score the held rows; return them and fit times.

    `frame` holds the study rows with a `side` column (train / calibration, from split_of).
    Columns out: priced, price, `point:<candidate>`, `low:`/`high:<candidate>` (the shipped
    interval around each candidate), `low:`/`high:interval=<variant>`, `curve:<fraction>`.
    """
    if not candidates or candidates[0] != CURRENT:
        raise ValueError(f"the candidates must start with {CURRENT!r}: the others build on it")
    started, seconds = time.perf_counter(), {}
    fit, held = frame[~held_mask], frame[held_mask]
    tr, cal = (fit["side"] == TRAIN).to_numpy(), (fit["side"] == CALIBRATION).to_numpy()
    spec = FeatureSpec.fit(fit[tr])
    d = FoldData(
        settings,
        spec,
        fit,
        spec.encode_frame(fit),
        np.log(fit["price"].to_numpy(float)),
        held,
        spec.encode_frame(held),
    )
    # Withdrawn car models are decided like training does: by the calibration error of a point
    # model fitted on train rows only; the same predictions calibrate the residual interval.
    cal_point = d.predict(settings.point_params(), d.x_fit[tr], d.y_fit[tr], d.x_fit[cal])
    withdrawn = withdrawn_models(
        model_errors(fit[cal], cal_point), settings.withdraw_min_rows, settings.withdraw_max_mape
    )
    (q_low_cal, q_low), (q_high_cal, q_high) = _quantiles(d, tr, [d.x_fit[cal], d.x_held])
    seconds["withdraw+quantiles"] = time.perf_counter() - started
    keys = frame_model_keys(held)
    out = pd.DataFrame(index=held.index)
    out["priced"] = (keys.isin(supported) & ~keys.isin(withdrawn)).to_numpy()
    out["price"] = held["price"].to_numpy(float)
    car = car_groups(fit, settings.bucket_km).to_numpy()
    unseen = ~np.isin(car[cal], car[tr])
    cal_scores = Scores(d.y_fit[cal], cal_point, q_low_cal, q_high_cal, unseen)
    level, band_rows = settings.interval_level, settings.band_min_rows
    for name in candidates:
        t = time.perf_counter()
        pred = POINT_CANDIDATES[name][0](d)
        seconds[name] = time.perf_counter() - t
        if name == CURRENT:
            d.current = pred
        low, high = interval(
            CURRENT_INTERVAL, cal_scores, Scores(None, pred, q_low, q_high), level, band_rows
        )
        out[f"point:{name}"], out[f"low:{name}"], out[f"high:{name}"] = map(
            np.exp, (pred, low, high)
        )
    held_scores = Scores(None, d.current, q_low, q_high)
    for variant in VARIANTS:
        low, high = interval(variant, cal_scores, held_scores, level, band_rows)
        out[f"low:interval={variant}"], out[f"high:interval={variant}"] = np.exp(low), np.exp(high)
    if learning_curve:
        rng = np.random.default_rng(settings.seed)
        for fraction in settings.fractions:
            t = time.perf_counter()
            take = np.sort(rng.permutation(len(fit))[: max(1, round(fraction * len(fit)))])
            pred = d.predict(settings.point_params(), d.x_fit[take], d.y_fit[take])
            out[f"curve:{fraction}"] = np.exp(pred)
            seconds[f"curve:{fraction}"] = time.perf_counter() - t
    return out, seconds
