"""The predictor: listings in, estimates out. The same code serves offline and online.

Prices are modelled on the log scale; the interval comes from two quantile boosters widened by
conformal offsets calibrated on held-out rows (see train.py). No pandas here.

A single listing takes a short path (Python-float encoding, no matrix); it runs the same
arithmetic as the matrix path and returns identical numbers. With `compiled=True` (the service)
the trees are scored by the compiled extension (treecode.py), which reproduces Booster.predict bit
for bit and is used only after proving it on the bundle's own trees; otherwise LightGBM scores
them. Trees whose tables point outside themselves make the bundle refused (BundleError).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from carprice.runtime import treecode
from carprice.runtime.bundle import Bundle, BundleError
from carprice.runtime.fastscore import RowScorer, score_matrix
from carprice.runtime.listing import model_key

UNSUPPORTED = "unsupported"


class Predictor:
    """Estimate prices with a loaded bundle."""

    def __init__(self, bundle: Bundle, *, compiled: bool = False):
        self.bundle = bundle
        self.version = bundle.version
        self._lo = float(bundle.interval["offset_low"])
        self._hi = float(bundle.interval["offset_high"])
        self._boosters = (bundle.point, bundle.low, bundle.high)
        spec = bundle.spec
        self._row = RowScorer(self._boosters, len(spec.features))
        n = len(spec.features)
        self._compiled = None
        if compiled:
            try:
                self._compiled = treecode.load(self._boosters, n)
            except treecode.TablesRefused as err:
                raise BundleError(f"{bundle.path}: {err}") from None

    @property
    def compiled(self) -> bool:
        """Whether the compiled tree scorer is in use (else LightGBM scores the trees)."""
        return self._compiled is not None

    def is_supported(self, listing: Mapping) -> bool:
        return model_key(listing.get("make"), listing.get("model")) in self.bundle.supported

    def predict_log(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return log price, low and high bounds for an encoded matrix."""
        if self._compiled is not None:
            point, low, high = self._compiled.score_matrix(matrix).T
        else:
            point, low, high = score_matrix(self._boosters, matrix)
        low = np.minimum(low - self._lo, point)
        high = np.maximum(high + self._hi, point)
        return point, low, high

    def estimate(self, listings: Sequence[Mapping]) -> list[dict]:
        """Return one estimate per listing (canonical keys), in order."""
        if len(listings) == 1:
            return [self._estimate_one(listings[0])]
        out: list[dict] = [{} for _ in listings]
        rows = [i for i, listing in enumerate(listings) if self.is_supported(listing)]
        supported = set(rows)
        for i, listing in enumerate(listings):
            if i not in supported:
                out[i] = _unsupported(listing)
        if rows:
            matrix = self.bundle.spec.encode_rows([listings[i] for i in rows])
            point, low, high = (np.exp(a) for a in self.predict_log(matrix))
            for k, i in enumerate(rows):
                out[i] = {
                    "status": "ok",
                    "price": round(float(point[k]), 2),
                    "price_low": round(float(low[k]), 2),
                    "price_high": round(float(high[k]), 2),
                }
        return out

    def _estimate_one(self, listing: Mapping) -> dict:
        key = model_key(listing.get("make"), listing.get("model"))
        if key not in self.bundle.supported:
            return _unsupported(listing)
        values = self.bundle.spec.encode_row(listing)
        if self._compiled is not None:
            point, low, high = self._compiled.score_row(values)
        else:
            point, low, high = self._row.score(values)
        low = min(low - self._lo, point)
        high = max(high + self._hi, point)
        price, price_low, price_high = np.exp(np.array((point, low, high))).tolist()
        return {
            "status": "ok",
            "price": round(price, 2),
            "price_low": round(price_low, 2),
            "price_high": round(price_high, 2),
        }


def _unsupported(listing: Mapping) -> dict:
    return {
        "status": UNSUPPORTED,
        "reason": (
            f"not enough clean data to price a {listing.get('make')} {listing.get('model')}"
        ),
    }
