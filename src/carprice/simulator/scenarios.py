"""Market drift: price trends, shocks and model launches parsed from a compact spec.

Grammar (terms separated by ``;``, whitespace ignored around terms)::

    index=RATE                     every price moves by RATE
    COLUMN:VALUE=RATE              prices of cars whose COLUMN equals VALUE move by RATE
                                   (COLUMN is make, model, fuel, gear or offerType)
    shock=YYYY-MM-DD:PCT           prices jump by PCT from that day on
    launch=MAKE/MODEL@YYYY-MM-DD:PCT
                                   a new model appears that day as PCT of all listings
    RATE = PCT/week | PCT/year     compounding, counted from the simulation start
    PCT  = [+|-]NUMBER%

Example: ``index=+0.5%/week;fuel:Electric=-1%/week;shock=2027-03-01:-10%;
launch=Tesla/Model Y@2027-02-01:2%``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

COLUMNS = ("make", "model", "fuel", "gear", "offerType")
WEEKS_PER_YEAR = 365.25 / 7
_PCT = r"([+-]?\d+(?:\.\d+)?)%"
_RATE = re.compile(rf"^{_PCT}/(week|year)$")
_SHOCK = re.compile(rf"^(\d{{4}}-\d{{2}}-\d{{2}}):{_PCT}$")
_LAUNCH = re.compile(rf"^([^/@]+)/([^@]+)@(\d{{4}}-\d{{2}}-\d{{2}}):{_PCT}$")


@dataclass(frozen=True)
class Trend:
    """A compounding weekly log-price change, for all cars or one column value."""

    weekly_log: float
    column: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class Shock:
    """A one-off price jump from a day on."""

    on: dt.date
    factor: float


@dataclass(frozen=True)
class Launch:
    """A new make/model that appears on a day as a share of listings."""

    make: str
    model: str
    on: dt.date
    share: float


@dataclass(frozen=True)
class Drift:
    """Everything that changes the market after `origin`, the first simulated day."""

    origin: dt.date
    trends: tuple[Trend, ...] = field(default_factory=tuple)
    shocks: tuple[Shock, ...] = field(default_factory=tuple)
    launches: tuple[Launch, ...] = field(default_factory=tuple)

    def price_factor(self, listed: np.ndarray, cars: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return the price multiplier for cars listed on the days in `listed` (datetime64[D])."""
        weeks = (listed - np.datetime64(self.origin, "D")).astype(np.int64) / 7.0
        log_factor = np.zeros(len(listed))
        for trend in self.trends:
            hit = 1.0 if trend.column is None else (cars[trend.column] == trend.value)
            log_factor += trend.weekly_log * weeks * hit
        for shock in self.shocks:
            log_factor += np.log(shock.factor) * (listed >= np.datetime64(shock.on, "D"))
        return np.exp(log_factor)


def _pct(text: str) -> float:
    return float(text) / 100.0


def _date(text: str, term: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"drift term {term!r}: {text!r} is not a date (YYYY-MM-DD)") from None


def _rate(text: str, term: str) -> float:
    match = _RATE.match(text)
    if not match:
        raise ValueError(f"drift term {term!r}: rate {text!r} is not like +0.5%/week or -3%/year")
    growth = 1.0 + _pct(match.group(1))
    if growth <= 0:
        raise ValueError(f"drift term {term!r}: rate {text!r} would make prices non-positive")
    per = 1.0 if match.group(2) == "week" else WEEKS_PER_YEAR
    return float(np.log(growth) / per)


def _term(term: str, drift: Drift) -> Drift:
    key, sep, value = term.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise ValueError(f"drift term {term!r}: expected KEY=VALUE")
    if key == "index":
        return _add(drift, trends=Trend(_rate(value, term)))
    if key == "shock":
        match = _SHOCK.match(value)
        if not match:
            raise ValueError(f"drift term {term!r}: expected shock=YYYY-MM-DD:PCT, e.g. -10%")
        factor = 1.0 + _pct(match.group(2))
        if factor <= 0:
            raise ValueError(f"drift term {term!r}: a shock of {match.group(2)}% leaves no price")
        return _add(drift, shocks=Shock(_date(match.group(1), term), factor))
    if key == "launch":
        match = _LAUNCH.match(value)
        if not match:
            raise ValueError(f"drift term {term!r}: expected launch=MAKE/MODEL@YYYY-MM-DD:PCT")
        share = _pct(match.group(4))
        if not 0 < share <= 1:
            raise ValueError(f"drift term {term!r}: launch share must be in (0%, 100%]")
        make, model = match.group(1).strip(), match.group(2).strip()
        return _add(drift, launches=Launch(make, model, _date(match.group(3), term), share))
    column, colon, level = key.partition(":")
    if colon and column in COLUMNS and level:
        return _add(drift, trends=Trend(_rate(value, term), column, level))
    raise ValueError(
        f"drift term {term!r}: unknown key {key!r}; use index, shock, launch or "
        f"COLUMN:VALUE with COLUMN in {', '.join(COLUMNS)}"
    )


def _add(drift: Drift, **one) -> Drift:
    ((name, item),) = one.items()
    return Drift(**{**drift.__dict__, name: (*getattr(drift, name), item)})


def parse_drift(spec: str | None, *, origin: dt.date) -> Drift:
    """Parse a drift spec (see the module docstring); an empty spec means no drift."""
    drift = Drift(origin=origin)
    for term in (spec or "").split(";"):
        if term.strip():
            drift = _term(term.strip(), drift)
    return drift
