"""Gate 2 on Dask partitions: every test row is encoded and priced on the worker holding it.

Each worker loads the bundles from their folders once and prices the test rows of its
partitions (challenger, champion and the naive baseline, whose medians are exact Dask group
aggregates of the train rows). The driver receives the scored test rows only, a few columns
each, and computes the same `summarise` as single-machine gate 2: medians (median APE, bias)
and the report's plots need every scored test row.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from carprice.model.dask_train import SPLIT, with_split
from carprice.model.evaluate import BASELINE_KEYS, Evaluation, baseline_from, score, summarise
from carprice.model.train import TEST, TRAIN
from carprice.runtime.bundle import load_bundle
from carprice.runtime.predictor import Predictor

SCORED = ("ok", "pred", "low", "high")
THEIRS = ("champion_ok", "champion_pred")
KEPT = ("make", "model", "fuel", "gear", "year", "price")


@lru_cache(maxsize=4)
def _predictor(bundle: str) -> Predictor:
    """Load a bundle once per worker process."""
    return Predictor(load_bundle(Path(bundle)))


def baseline_medians(train) -> tuple[list[pd.Series], float]:
    """The baseline's median train prices, as exact Dask group aggregates."""
    import dask

    tables = [train.groupby(keys)["price"].median() for keys in BASELINE_KEYS]
    overall = train.assign(_all=0).groupby("_all")["price"].median()
    tables, overall = dask.compute(tables, overall)
    return tables, float(overall.iloc[0])


def _score_part(frame, challenger: str, champion: str | None, medians, overall) -> pd.DataFrame:
    """Price one partition's test rows with the challenger, the champion and the baseline."""
    scored = score(_predictor(challenger), frame)
    ok = scored["ok"].to_numpy()
    out = pd.concat([frame[list(KEPT)], scored], axis=1)
    out["base_pred"] = np.nan
    out["champion_ok"] = False
    out["champion_pred"] = np.nan
    if ok.any():
        out.loc[ok, "base_pred"] = baseline_from(medians, overall, frame[ok])
        if champion is not None:
            theirs = score(_predictor(champion), frame[ok])
            out.loc[ok, "champion_ok"] = theirs["ok"].to_numpy()
            out.loc[ok, "champion_pred"] = theirs["pred"].to_numpy()
    return out


def evaluate_partitions(
    challenger: Path,
    champion: tuple[Path, str] | None,
    clean,
    test_share: float,
    calibration_share: float,
) -> Evaluation:
    """Gate 2's measurements of the bundle at `challenger` on a clean Dask DataFrame.

    `champion` is the champion's bundle folder and version, when there is one.
    """
    rows = with_split(clean, test_share, calibration_share)
    medians, overall = baseline_medians(rows[rows[SPLIT] == TRAIN])
    test = rows[rows[SPLIT] == TEST]
    args = (str(challenger), str(champion[0]) if champion else None, medians, overall)
    meta = _score_part(test._meta, *args)
    gathered = test.map_partitions(_score_part, *args, meta=meta).compute()
    gathered = gathered.reset_index(drop=True)
    scored = gathered[list(SCORED)].astype({"ok": bool})
    ok = scored["ok"].to_numpy()
    theirs = None
    if champion is not None:
        theirs = gathered.loc[ok, list(THEIRS)].set_axis(["ok", "pred"], axis=1)
        theirs = theirs.astype({"ok": bool})
    base = gathered.loc[ok, "base_pred"].to_numpy()
    version = champion[1] if champion else None
    return summarise(gathered[list(KEPT)], scored, base, theirs, version)
