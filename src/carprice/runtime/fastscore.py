"""Fast scoring of LightGBM boosters, with the same numbers as `Booster.predict`.

`Booster.predict` spends most of a single-row call in Python-side checks and conversions. The
single-row scorer here sets up LightGBM's own "fast single row" predictor once per booster (C API
`LGBM_BoosterPredictForMatSingleRowFast*`) and then passes a preallocated row buffer: the same
trees, the same summation, so the results are bit-identical. Matrices go through
`Booster.predict` unchanged.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence

import lightgbm as lgb
import numpy as np

_PREDICT_NORMAL = 0
_DTYPE_FLOAT64 = 1
_ROW_MAJOR = 1


class RowScorer:
    """Score one dense row with several boosters through LightGBM's fast single-row path."""

    def __init__(self, boosters: Sequence[lgb.Booster], n_features: int):
        from lightgbm.basic import _LIB, _safe_call  # the C library lightgbm already loaded

        self._lib = _LIB
        # Own function objects (item access is uncached), so lightgbm's are left untouched.
        self._free = _LIB["LGBM_FastConfigFree"]
        self._free.argtypes = [ctypes.c_void_p]
        self._predict = _LIB["LGBM_BoosterPredictForMatSingleRowFast"]
        self._predict.argtypes = [ctypes.c_void_p] * 4
        self._predict.restype = ctypes.c_int
        self._boosters = list(boosters)  # keep the boosters alive as long as their handles
        self._handles: list[int] = []
        for booster in self._boosters:
            handle = ctypes.c_void_p()
            _safe_call(
                _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                    booster._handle,
                    ctypes.c_int(_PREDICT_NORMAL),
                    ctypes.c_int(0),
                    ctypes.c_int(-1),
                    ctypes.c_int(_DTYPE_FLOAT64),
                    ctypes.c_int32(n_features),
                    ctypes.c_char_p(b"num_threads=1"),
                    ctypes.byref(handle),
                )
            )
            self._handles.append(handle.value)
        self._n = n_features
        self._row = (ctypes.c_double * n_features)()
        self._out = (ctypes.c_double * len(self._boosters))()
        self._len = ctypes.c_int64()
        # Raw addresses: ctypes converts plain ints fastest.
        out = ctypes.addressof(self._out)
        self._outs = [out + ctypes.sizeof(ctypes.c_double) * i for i in range(len(boosters))]
        self._row_at = ctypes.addressof(self._row)
        self._len_at = ctypes.addressof(self._len)
        self._lock = threading.Lock()  # the row buffer and LightGBM's fast config are shared

    def score(self, values: Sequence[float]) -> list[float]:
        """Return each booster's raw prediction for one row of feature values."""
        with self._lock:
            self._row[:] = values
            row, length = self._row_at, self._len_at
            for handle, out in zip(self._handles, self._outs, strict=True):
                if self._predict(handle, row, length, out) != 0:
                    raise lgb.basic.LightGBMError(self._lib.LGBM_GetLastError().decode())
            return self._out[:]

    def close(self) -> None:
        """Release LightGBM's fast-predict configurations."""
        with self._lock:
            for handle in self._handles:
                self._free(handle)
            self._handles = []

    def __del__(self):
        if getattr(self, "_handles", None):
            self.close()


def score_matrix(boosters: Sequence[lgb.Booster], matrix: np.ndarray) -> list[np.ndarray]:
    """Return each booster's raw predictions for an encoded matrix (one thread)."""
    return [booster.predict(matrix, num_threads=1) for booster in boosters]
