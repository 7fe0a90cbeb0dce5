"""Shared fixtures: parameters, rules and the path of the real listings."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from carprice.config import PROJECT_ROOT, load_params
from carprice.data.rules import ValidationRules

REAL_LISTINGS = PROJECT_ROOT.parent / "shared" / "data" / "autoscout24-listings.csv"
TODAY = dt.date(2026, 11, 27)  # fixed so that year rules do not move under the tests
# A shared (PostgreSQL) store's keys need a pepper (carprice.runtime.clients.pepper): the tests,
# their servers and their commands share this one, as a deployment's service and CLI do.
TEST_PEPPER = "tests-pepper-of-at-least-32-characters"
os.environ.setdefault("CARPRICE_KEY_PEPPER", TEST_PEPPER)


@pytest.fixture(scope="session")
def params() -> dict:
    return load_params(PROJECT_ROOT / "params.yaml")


@pytest.fixture(scope="session")
def rules(params) -> ValidationRules:
    return ValidationRules.from_params(params["validation"], today=TODAY)


def skip_unless_required(flag: str, reason: str) -> None:
    """Skip with `reason`, or fail with it where CI requires the tier (`flag`=1, set in .ci/run)."""
    if os.environ.get(flag) == "1":
        pytest.fail(f"{reason} ({flag}=1: this tier must run here)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_listings_path() -> Path:
    """The real listings; their tests skip without them, except under CARPRICE_REQUIRE_DATA=1."""
    if not REAL_LISTINGS.exists():
        skip_unless_required(
            "CARPRICE_REQUIRE_DATA",
            f"real listings not found at {REAL_LISTINGS} (they live in ../shared/data)",
        )
    return REAL_LISTINGS


def run_cli(*args, cwd, env=None):
    """Run `carprice ARGS` in a fresh interpreter; return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "carprice.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def listing(**overrides) -> dict:
    """Return one plausible, clean listing row, with fields overridden."""
    row = {
        "mileage": 60000,
        "make": "Volkswagen",
        "model": "Golf",
        "fuel": "Gasoline",
        "gear": "Manual",
        "offerType": "Used",
        "price": 14990,
        "hp": 116,
        "year": 2018,
    }
    row.update(overrides)
    return row


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


SMALL_ROUNDS = {"num_boost_round": 200, "quantile_boost_round": 60}


def small_params(params):
    """Training parameters for a quick model: few rounds at a higher learning rate."""
    import dataclasses

    from carprice.model.train import TrainParams

    tp = TrainParams.from_params(params["train"])
    return dataclasses.replace(
        tp, **SMALL_ROUNDS, lgb={**tp.lgb, "learning_rate": 0.1, "lambda_l2": 1.0}
    )


@pytest.fixture(scope="session")
def market_frame() -> pd.DataFrame:
    """A clean simulated market of 20,000 listings (always available, deterministic)."""
    from carprice.simulator.market import generate_listings

    frame = generate_listings(20_000, seed=11, when=dt.date(2026, 3, 2), dirty=False)
    frame = frame.drop(columns=["listing_id", "listed_at"]).drop_duplicates(ignore_index=True)
    frame["hp"] = frame["hp"].astype("int64")
    return frame


@pytest.fixture(scope="session")
def small_model(market_frame, params):
    """A quickly trained model on the simulated market, with its split."""
    from carprice.model.train import split_of, train

    tp = small_params(params)
    split = split_of(market_frame, tp.test_share, tp.calibration_share)
    return train(market_frame, split, tp), split


@pytest.fixture(scope="session")
def small_bundle(small_model, market_frame, tmp_path_factory):
    """The small model written as a bundle, supporting models with at least 20 rows."""
    from carprice.runtime.bundle import write_bundle

    model, _ = small_model
    counts = market_frame.groupby(["make", "model"]).size()
    supported = [key for key, n in counts.items() if n >= 20]
    path = tmp_path_factory.mktemp("bundles") / "small"
    return write_bundle(
        path,
        boosters=model.boosters,
        spec=model.spec,
        supported=supported,
        interval=model.interval,
        metadata={"model_version": "m-test-small"},
    )
