"""Extra features the quality study tries: model-name tokens and make -> model smoothing.

Both are fitted on a fold's training rows only and add columns after the FeatureSpec matrix.
They live here, not in FeatureSpec, because they are candidates: shipping one changes the
bundle format, which the study only measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from carprice.runtime.listing import frame_model_keys

OTHER = "(other)"
NONE = "(none)"


def model_tokens(models: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split model names into a family and a trim word.

    The family is the first word ("Golf Variant" -> "Golf", "C 220" -> "C"), a three-digit
    number standing for its first digit ("320" -> "3xx": BMW series, Peugeot size class). The
    trim word is the last word of a name with more than one ("Golf Variant" -> "Variant").
    """
    words = models.astype(str).str.split()
    first = words.str[0].fillna("")
    numeric = first.str.fullmatch(r"\d{3}")
    family = first.where(~numeric, first.str[0] + "xx")
    trim = words.map(lambda w: w[-1] if len(w) > 1 else NONE)
    return family, trim


@dataclass(frozen=True)
class TokenEncoder:
    """Codes for make|family and trim words seen at least `min_rows` times in training."""

    families: dict[str, float]
    trims: dict[str, float]

    @classmethod
    def fit(cls, frame: pd.DataFrame, min_rows: int) -> TokenEncoder:
        family, trim = _tokens(frame)
        return cls(_vocab(family, min_rows), _vocab(trim, min_rows))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Return two categorical columns (codes; unseen or rare values share one code)."""
        family, trim = _tokens(frame)
        columns = [
            s.map(v).fillna(v[OTHER]).to_numpy(float)
            for s, v in ((family, self.families), (trim, self.trims))
        ]
        return np.column_stack(columns)


def _tokens(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    family, trim = model_tokens(frame["model"])
    return frame["make"].astype(str) + "|" + family, trim


def _vocab(values: pd.Series, min_rows: int) -> dict[str, float]:
    counts = values.value_counts()
    kept = sorted(counts[counts >= min_rows].index)
    return {OTHER: 0.0, **{v: float(i + 1) for i, v in enumerate(kept)}}


@dataclass(frozen=True)
class SmoothedEncoder:
    """Mean log price per make|model, shrunk toward its make's mean by `weight` pseudo-rows.

    A model with n training rows gets (n x its mean + weight x make mean) / (n + weight): rare
    models lean on their make, common ones on themselves.
    """

    model_means: dict[str, float]
    make_means: dict[str, float]
    overall: float

    @classmethod
    def fit(cls, frame: pd.DataFrame, log_price: np.ndarray, weight: float) -> SmoothedEncoder:
        y = pd.Series(log_price, index=frame.index)
        overall = float(y.mean())
        by_make = y.groupby(frame["make"]).agg(["sum", "count"])
        make_means = ((by_make["sum"] + weight * overall) / (by_make["count"] + weight)).to_dict()
        keys = frame_model_keys(frame)
        by_model = y.groupby(keys).agg(["sum", "count"])
        make_of = frame.groupby(keys)["make"].first()
        prior = make_of.map(make_means)
        model_means = ((by_model["sum"] + weight * prior) / (by_model["count"] + weight)).to_dict()
        return cls(model_means, make_means, overall)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Return one numeric column: the model's smoothed mean, else the make's, else overall."""
        make = frame["make"].map(self.make_means).fillna(self.overall)
        model = frame_model_keys(frame).map(self.model_means)
        return model.fillna(make).to_numpy(float)[:, None]


def out_of_fold_smoothing(
    frame: pd.DataFrame, log_price: np.ndarray, weight: float, folds: int, seed: int
) -> tuple[np.ndarray, SmoothedEncoder]:
    """Return the training rows' encoding out of fold (no row sees its own price) and the
    encoder fitted on all of them, for held-out rows."""
    rng = np.random.default_rng(seed)
    part = rng.integers(0, folds, size=len(frame))
    column = np.empty((len(frame), 1))
    for k in range(folds):
        inner = part == k
        fitted = SmoothedEncoder.fit(frame[~inner], log_price[~inner], weight)
        column[inner] = fitted.transform(frame[inner])
    return column, SmoothedEncoder.fit(frame, log_price, weight)


def tokens(min_rows: int):
    """The trim-tokens candidate's features (carprice.model.cv.Features): two categoricals."""

    def features(fit: pd.DataFrame, log_price: np.ndarray, seed: int):
        encoder = TokenEncoder.fit(fit, min_rows)
        return encoder.transform(fit), encoder.transform, 2

    return features


def smoothing(weight: float):
    """The make-model-smoothing candidate's feature (carprice.model.cv.Features): one number."""

    def features(fit: pd.DataFrame, log_price: np.ndarray, seed: int):
        column, encoder = out_of_fold_smoothing(fit, log_price, weight, 5, seed)
        return column, encoder.transform, 0

    return features
