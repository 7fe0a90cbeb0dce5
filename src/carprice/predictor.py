"""The predictor: listings in, estimates out. The same code serves offline and online.

Prices are modelled on the log scale; the interval comes from two quantile boosters widened by
conformal offsets calibrated on held-out rows (see train.py). No pandas here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from carprice.bundle import Bundle
from carprice.features import model_key

UNSUPPORTED = "unsupported"


class Predictor:
    """Estimate prices with a loaded bundle."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.version = bundle.version
        self._lo = float(bundle.interval["offset_low"])
        self._hi = float(bundle.interval["offset_high"])

    def is_supported(self, listing: Mapping) -> bool:
        return model_key(listing.get("make"), listing.get("model")) in self.bundle.supported

    def predict_log(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return log price, low and high bounds for an encoded matrix."""
        b = self.bundle
        point = b.point.predict(matrix, num_threads=1)
        low = np.minimum(b.low.predict(matrix, num_threads=1) - self._lo, point)
        high = np.maximum(b.high.predict(matrix, num_threads=1) + self._hi, point)
        return point, low, high

    def estimate(self, listings: Sequence[Mapping]) -> list[dict]:
        """Return one estimate per listing (canonical keys), in order."""
        out: list[dict] = [{} for _ in listings]
        rows = [i for i, listing in enumerate(listings) if self.is_supported(listing)]
        supported = set(rows)
        for i, listing in enumerate(listings):
            if i not in supported:
                out[i] = {
                    "status": UNSUPPORTED,
                    "reason": (
                        f"not enough clean data to price a {listing.get('make')} "
                        f"{listing.get('model')}"
                    ),
                }
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
