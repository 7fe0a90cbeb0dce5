"""The simulator's calibration: the measured market, compiled into sampling tables."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

AGES = 11  # listings are 0..10 years old


def _cumulative(weights: np.ndarray) -> np.ndarray:
    """Return row-wise cumulative shares ending exactly at 1."""
    cum = np.cumsum(weights, axis=-1, dtype=float)
    cum /= cum[..., -1:]
    cum[..., -1] = 1.0
    return cum


def moments(table: dict) -> tuple[float, float]:
    """Return the mean and sd of a quantile table drawn by linear interpolation."""
    p, q = np.asarray(table["probs"]), np.asarray(table["values"])
    dp, a, b = np.diff(p), q[:-1], q[1:]
    mean = float(np.sum(dp * (a + b) / 2))
    return mean, float(np.sqrt(np.sum(dp * (a * a + a * b + b * b) / 3) - mean**2))


def spec_uniforms(keys: list[str]) -> np.ndarray:
    """Map each key to a uniform in (0, 1) by a stable hash: no seed, no random stream."""
    digests = b"".join(hashlib.blake2b(k.encode(), digest_size=8).digest() for k in keys)
    top = np.frombuffer(digests, ">u8") >> np.uint64(11)
    return (top.astype(float) + 0.5) / 2.0**53


@dataclass(frozen=True)
class Catalogue:
    """Every simulated car model as flat arrays, one row per model (and per trim)."""

    make: np.ndarray  # make name per model
    model: np.ndarray  # model name per model
    cum_share: np.ndarray  # cumulative share of listings over models
    coef: np.ndarray  # (models, 4): a, b, c, d of ln(price) = a + b*age + c*ln1p(km) + d*ln(hp)
    sd: np.ndarray  # residual sd of ln(price) per model
    offer_odds: np.ndarray  # the make's odds of a non-Used offer relative to the market
    age_cum: np.ndarray  # (models, AGES): cumulative share of each age within the model
    trim_model: np.ndarray  # model index per trim
    trim_hp: np.ndarray
    trim_fuel: np.ndarray  # index into Calibration.fuels
    trim_gear: np.ndarray  # index into Calibration.gears
    trim_cum: np.ndarray  # (age buckets, trims): cumulative share of the trim within its model

    @property
    def size(self) -> int:
        return len(self.model)

    def index(self, make: str, model: str) -> int:
        """Return the row of a make/model, or -1 when it is not in the catalogue."""
        hit = np.flatnonzero((self.make == make) & (self.model == model))
        return int(hit[0]) if len(hit) else -1

    def flagship(self, make: str) -> int:
        """Return the make's most listed model, or the most listed model overall."""
        shares = np.diff(self.cum_share, prepend=0.0)
        mine = np.flatnonzero(self.make == make)
        pool = mine if len(mine) else np.arange(self.size)
        return int(pool[np.argmax(shares[pool])])

    def with_model(self, make: str, model: str, like: int) -> Catalogue:
        """Return a copy with one extra model shaped like row `like` but never drawn by share."""
        new = self.size
        trims = np.flatnonzero(self.trim_model == like)
        return replace(
            self,
            make=np.append(self.make, make),
            model=np.append(self.model, model),
            cum_share=np.append(self.cum_share, 1.0),
            coef=np.vstack([self.coef, self.coef[like]]),
            sd=np.append(self.sd, self.sd[like]),
            offer_odds=np.append(self.offer_odds, self.offer_odds[like]),
            age_cum=np.vstack([self.age_cum, self.age_cum[like]]),
            trim_model=np.append(self.trim_model, np.full(len(trims), new)),
            trim_hp=np.append(self.trim_hp, self.trim_hp[trims]),
            trim_fuel=np.append(self.trim_fuel, self.trim_fuel[trims]),
            trim_gear=np.append(self.trim_gear, self.trim_gear[trims]),
            trim_cum=np.hstack([self.trim_cum, self.trim_cum[:, trims]]),
        )


@dataclass(frozen=True)
class Calibration:
    """The measured market: raw numbers plus the compiled catalogue."""

    raw: dict
    catalogue: Catalogue

    @property
    def fuels(self) -> list[str]:
        return self.raw["fuels"]

    @property
    def gears(self) -> list[str]:
        return self.raw["gears"]

    @property
    def offer_types(self) -> list[str]:
        return self.raw["offer_types"]

    @property
    def dirty_rates(self) -> dict[str, float]:
        return dict(self.raw["dirty"])


def _pm_row(pm: dict) -> list[float]:
    return [pm["a"], pm["b"], pm["c"], pm["d"]]


def compile_catalogue(raw: dict) -> Catalogue:
    """Flatten the make -> model -> trim tree into arrays the sampler can index."""
    makes, models, shares, coef, sd, odds, ages, trims = [], [], [], [], [], [], [], []
    for make in raw["makes"]:
        for entry in make["models"]:
            index = len(models)
            makes.append(make["make"])
            models.append(entry["model"])
            shares.append(make["share"] * entry["share"])
            coef.append(_pm_row(entry["pm"] or make["pm"]))
            sd.append(entry["sd"])
            odds.append(make["offer_odds"])
            ages.append(entry["ages"])
            trims.extend([index, *t] for t in entry["trims"])
    age_cum = _cumulative(np.asarray(ages, float) + 1e-9)
    table = np.asarray(trims, float)
    counts = table[:, 4:]
    # Smooth toward the model's all-age mix so every age bucket can draw every trim.
    weights = counts + 0.1 * counts.sum(axis=1, keepdims=True) + 1e-9
    keys = np.empty((counts.shape[1], len(table)))
    owner = table[:, 0].astype(np.int64)
    for bucket in range(counts.shape[1]):
        cum = np.cumsum(weights[:, bucket])
        start = np.r_[0.0, cum][np.searchsorted(owner, owner, side="left")]
        end = cum[np.searchsorted(owner, owner, side="right") - 1]
        keys[bucket] = (cum - start) / (end - start)
    return Catalogue(
        make=np.asarray(makes, dtype=object),
        model=np.asarray(models, dtype=object),
        cum_share=_cumulative(np.asarray(shares, float)),
        coef=np.asarray(coef, float),
        sd=np.asarray(sd, float),
        offer_odds=np.asarray(odds, float),
        age_cum=age_cum,
        trim_model=owner,
        trim_hp=table[:, 1].astype(np.int64),
        trim_fuel=table[:, 2].astype(np.int64),
        trim_gear=table[:, 3].astype(np.int64),
        trim_cum=keys,
    )


def load_calibration(path: Path | None = None) -> Calibration:
    """Load a calibration JSON file (default: the one shipped with the package)."""
    if path is None:
        return _default()
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return Calibration(raw=raw, catalogue=compile_catalogue(raw))


@cache
def _default() -> Calibration:
    text = (
        resources.files("carprice.simulator")
        .joinpath("market_tables.json")
        .read_text(encoding="utf-8")
    )
    raw = json.loads(text)
    return Calibration(raw=raw, catalogue=compile_catalogue(raw))
