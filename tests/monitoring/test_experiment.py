"""The A/B experiment on synthetic store rows: verdicts, intervals and promotion by experiment."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import yaml

from carprice.cli.main import main
from carprice.monitor.experiment import compare
from carprice.monitor.experiment_text import table_rows
from carprice.release.promote import ReleaseError, require_experiment
from carprice.runtime.experiment import assign_arm
from carprice.runtime.store import Store
from tests.serving.conftest import db, pg_url  # noqa: F401  (fixtures)

SETTINGS = {
    "sold_within_days": 30,
    "min_rows": 80,
    "confidence": 0.95,
    "non_inferiority_margin": 0.02,
    "bootstrap_rounds": 400,
    "seed": 7,
}
PARAMS = {"experiment": SETTINGS}
LOGGED = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)  # 60+ days before AS_OF: fates known
AS_OF = dt.datetime(2026, 3, 20, tzinfo=dt.UTC)
CHAMPION, CHALLENGER = "m-champion", "m-challenger"


def _row(pid: str, arm: str, price: float, asking: float) -> dict:
    return {
        "prediction_id": pid,
        "request_id": "r" * 32,
        "created_at": LOGGED,
        "model_version": CHAMPION if arm == "champion" else CHALLENGER,
        "inputs": {"make": "Volkswagen", "listing_key": f"ad-{pid}", "listing_price": asking},
        "status": "ok",
        "price": price,
        "price_low": price * 0.8,
        "price_high": price * 1.2,
        "price_rating": None,
        "reason": None,
        "latency_ms": 1.0,
        "challenger_version": None,
        "challenger_status": None,
        "challenger_price": None,
        "challenger_price_low": None,
        "challenger_price_high": None,
        "challenger_error": None,
        "client": None,
        "arm": arm,
    }


def seed(store: Store, per_arm: int, arms: dict[str, tuple[float, float]], rng_seed: int = 1):
    """Log `per_arm` keyed estimates per arm and what their sellers did.

    arms maps an arm to (chance of a sale within 30 days, typical |error| of its estimate).
    Sellers whose asking price is far above the estimate lower it towards it.
    """
    rng = np.random.default_rng(rng_seed)
    rows, posts = [], []
    for arm, (sell_chance, error) in arms.items():
        for i in range(per_arm):
            pid = f"{arm[3]}{i:031d}"  # "m" or "l"
            sold = 20_000.0 * rng.uniform(0.7, 1.3)
            estimate = sold * (1 + rng.choice([-1, 1]) * rng.uniform(0.5, 1.5) * error)
            asking = round(sold * 1.08, 2)
            rows.append(_row(pid, arm, round(estimate, 2), asking))
            if asking > estimate * 1.05:
                changed = round((asking + estimate) / 2, 2)
                at = LOGGED + dt.timedelta(days=3)
                posts.append(
                    (pid, {"event": "listing_price", "listing_price": changed, "event_at": at})
                )
            if rng.random() < sell_chance:
                day = LOGGED.date() + dt.timedelta(days=int(rng.integers(1, 29)))
                posts.append((pid, {"event": "sold", "sold_price": round(sold, 2), "sold_at": day}))
            else:
                day = LOGGED + dt.timedelta(days=int(rng.integers(31, 50)))
                posts.append((pid, {"event": "withdrawn", "event_at": day}))
    store.log_estimates(rows)
    for pid, fields in posts:
        if fields.get("sold_at"):
            fields["event_at"] = dt.datetime.combine(fields["sold_at"], dt.time(), dt.UTC)
        assert store.add_feedback(pid, **fields) is not None


@pytest.fixture
def store(db):  # noqa: F811
    url, prefix = db
    store = Store(url, prefix)
    store.create()
    yield store
    store.dispose()


def metric(result: dict, name: str) -> dict:
    return result["comparison"][name]


def test_a_challenger_that_sells_less_and_errs_more_is_worse(store):
    seed(store, 300, {"champion": (0.6, 0.06), "challenger": (0.3, 0.2)})
    result = compare(store, PARAMS, as_of=AS_OF)
    assert (result["champion"], result["challenger"]) == (CHAMPION, CHALLENGER)
    by_arm = {a["arm"]: a for a in result["arms"]}
    assert by_arm["champion"]["estimates"] == by_arm["challenger"]["estimates"] == 300
    assert by_arm["champion"]["with_outcome"] == 300
    champ, chall = by_arm["champion"]["conversion"], by_arm["challenger"]["conversion"]
    assert champ["ci"][0] < champ["share"] < champ["ci"][1]
    assert 0.5 < champ["share"] < 0.7 and 0.2 < chall["share"] < 0.4
    assert (
        by_arm["challenger"]["realised_mape"]["value"]
        > by_arm["champion"]["realised_mape"]["value"]
    )
    assert metric(result, "conversion")["verdict"] == "worse"
    assert metric(result, "realised_mape")["verdict"] == "worse"
    assert metric(result, "conversion")["ci"][1] < 0 < metric(result, "realised_mape")["ci"][0]
    assert not result["promotion"]["allowed"]
    # sellers priced far above the estimate moved towards it, in both arms
    assert by_arm["champion"]["adjusted"]["towards_estimate_share"] == 1.0
    assert by_arm["challenger"]["adjusted"]["share"] > by_arm["champion"]["adjusted"]["share"]
    with pytest.raises(ReleaseError, match="conversion: challenger - champion = -0.[0-9]+"):
        require_experiment(result, CHALLENGER)


def test_a_challenger_that_sells_more_and_errs_less_is_better(store):
    seed(store, 300, {"champion": (0.3, 0.2), "challenger": (0.6, 0.06)})
    result = compare(store, PARAMS, as_of=AS_OF)
    assert metric(result, "conversion")["verdict"] == "better"
    assert metric(result, "realised_mape")["verdict"] == "better"
    assert result["promotion"] == {"allowed": True, "reasons": []}
    require_experiment(result, CHALLENGER)  # no refusal
    with pytest.raises(ReleaseError, match="ran m-challenger, not m-other"):
        require_experiment(result, "m-other")


def test_too_few_rows_are_not_yet_known_and_refused(store):
    seed(store, 30, {"champion": (0.6, 0.06), "challenger": (0.1, 0.3)})
    result = compare(store, PARAMS, as_of=AS_OF)
    verdicts = {name: entry["verdict"] for name, entry in result["comparison"].items()}
    assert set(verdicts.values()) == {"not yet known"}
    assert not result["promotion"]["allowed"]
    assert "30 champion and" in result["promotion"]["reasons"][0]


def test_the_same_store_gives_the_same_intervals(store):
    seed(store, 120, {"champion": (0.5, 0.1), "challenger": (0.5, 0.1)})
    first, second = compare(store, PARAMS, as_of=AS_OF), compare(store, PARAMS, as_of=AS_OF)
    assert first == second
    assert [row[0] for row in table_rows(first)[1:3]] == ["challenger", "champion"]


def test_listings_without_a_key_take_no_part(store):
    seed(store, 100, {"champion": (0.5, 0.1), "challenger": (0.5, 0.1)})
    row = _row("x" * 32, "champion", 10_000.0, 12_000.0)
    del row["inputs"]["listing_key"]
    store.log_estimates([row])
    result = compare(store, PARAMS, as_of=AS_OF)
    assert sum(a["estimates"] for a in result["arms"]) == 200


def test_the_arm_is_sticky_and_follows_the_share():
    keys = [f"listing-{i}" for i in range(4000)]
    assert all(assign_arm(k, 0.0) == "champion" for k in keys)
    assert all(assign_arm(k, 1.0) == "challenger" for k in keys)
    assert assign_arm(None, 1.0) == "champion"
    share = sum(assign_arm(k, 0.3) == "challenger" for k in keys) / len(keys)
    assert 0.27 < share < 0.33
    assert [assign_arm(k, 0.3) for k in keys] == [assign_arm(k, 0.3) for k in keys]
    # a larger share keeps every challenger listing of a smaller one
    assert all(
        assign_arm(k, 0.5) == "challenger" for k in keys if assign_arm(k, 0.3) == "challenger"
    )


def _promote(tmp_path, monkeypatch, capsys, arms, per_arm=300):
    home = tmp_path / "home"
    store = Store(f"sqlite:///{home / 'carprice.db'}")
    store.create()
    seed(store, per_arm, arms)
    store.dispose()
    package = tmp_path / "package"
    package.mkdir()
    (package / "package.json").write_text(
        json.dumps({"model_version": CHALLENGER, "registry_version": "7"})
    )
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    monkeypatch.setenv("CARPRICE_HOME", str(home))
    monkeypatch.delenv("CARPRICE_DB_URL", raising=False)
    monkeypatch.delenv("CARPRICE_DB_PREFIX", raising=False)
    argv = ["promote", "--by-experiment", "--package", str(package), "--params", str(params)]
    code = main(argv)
    return code, capsys.readouterr().err


def test_promote_by_experiment_refuses_a_worse_challenger_with_the_numbers(
    tmp_path, monkeypatch, capsys
):
    code, err = _promote(
        tmp_path, monkeypatch, capsys, {"champion": (0.6, 0.06), "challenger": (0.3, 0.2)}
    )
    assert code == 1
    assert "promote refused: the experiment does not support it" in err
    assert "conversion: challenger - champion = -0." in err
    assert "realised_mape: challenger - champion = +0." in err
    assert "challenger - champion: conversion" in err and "worse" in err


def test_promote_by_experiment_refuses_while_too_few_rows(tmp_path, monkeypatch, capsys):
    arms = {"champion": (0.6, 0.06), "challenger": (0.6, 0.06)}
    code, err = _promote(tmp_path, monkeypatch, capsys, arms, per_arm=20)
    assert code == 1
    assert "20 champion and 20 challenger rows (80 needed per arm)" in err


def test_promote_by_experiment_lets_a_better_challenger_through_to_the_release_checks(
    tmp_path, monkeypatch, capsys
):
    code, err = _promote(
        tmp_path, monkeypatch, capsys, {"champion": (0.3, 0.2), "challenger": (0.6, 0.06)}
    )
    assert "m-challenger is not worse on conversion and realised error" in err
    assert "the experiment does not support it" not in err
    # the package here has no image: the ordinary release checks refuse it next
    assert code == 1 and "has no image" in err


def test_days_to_sell_count_from_the_listing_date_when_it_precedes_the_estimate(store):
    from carprice.monitor.experiment_outcomes import outcomes

    listed = _row("a" * 32, "champion", 10_000.0, 11_000.0)
    listed["inputs"]["listed_at"] = "2025-12-26"  # online ten days before the estimate
    later = _row("b" * 32, "champion", 10_000.0, 11_000.0)
    later["inputs"]["listed_at"] = "2026-02-01"  # after the estimate: cannot be right
    plain = _row("c" * 32, "champion", 10_000.0, 11_000.0)
    store.log_estimates([listed, later, plain])
    for row in (listed, later, plain):
        sold = dt.date(2026, 1, 15)
        store.add_feedback(row["prediction_id"], sold_price=10_500.0, sold_at=sold, event="sold")
    # 2026-01-15 less 2025-12-26 is 20 days; the other two count from the estimate (01-05)
    assert sorted(r["days"] for r in outcomes(store, as_of=AS_OF)) == [10, 10, 20]
