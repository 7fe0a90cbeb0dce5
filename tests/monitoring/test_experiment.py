"""The A/B experiment on synthetic store rows: the record, its window, the listing as the unit,
the salted arms, the checks before a verdict and promotion by experiment.

These tests judge 300 listings per arm with extreme arms (the rates at the margin are in
test_experiment_rates.py, at production's margins and planned n). Their margins are what the
power rule resolves at that n (tests/monitoring/power.py), as the test says: larger
than production's, which needs 10,479 listings per arm on conversion.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import yaml

import carprice.release.promote as promote_module
from carprice.cli.main import main
from carprice.config import load_params
from carprice.monitor.experiment import compare
from carprice.monitor.experiment_outcomes import outcomes
from carprice.monitor.experiment_plan import ExperimentSettings, plan
from carprice.monitor.experiment_text import table_rows
from carprice.release.promote import ReleaseError, require_experiment
from carprice.runtime.experiment import assign_arm
from carprice.runtime.store import Store
from tests.monitoring.power import resolvable_margin
from tests.serving.conftest import db, pg_url  # noqa: F401  (fixtures)

PER_ARM, SHARE = 300, 0.5
STARTED = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)  # 60+ days before AS_OF: fates known
LOGGED = STARTED + dt.timedelta(minutes=30)
AS_OF = dt.datetime(2026, 3, 20, tzinfo=dt.UTC)
CHAMPION, CHALLENGER = "m-champion", "m-challenger"


def _params(per_arm: int = PER_ARM) -> dict:
    """Production's `experiment:` section with each gating margin the power rule resolves at
    `per_arm` listings (a quarter of them sold, for realised MAPE)."""
    section = dict(load_params("params.yaml")["experiment"])
    settings = ExperimentSettings.from_params(section)
    margins = {name: dict(entry) for name, entry in section["margins"].items()}
    margins["conversion"]["margin"] = resolvable_margin(settings, "conversion", per_arm, SHARE)
    sold = per_arm // 4
    margins["realised_mape"]["margin"] = resolvable_margin(settings, "realised_mape", sold, SHARE)
    return {"experiment": {**section, "margins": margins, "bootstrap_rounds": 200}}


PARAMS = _params()


def _row(pid: str, arm: str, price: float, asking: float, **fields) -> dict:
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
        "experiment_id": None,
        **fields,
    }


def start(store: Store, params: dict = PARAMS, share: float = SHARE, at=STARTED, **versions):
    settings = ExperimentSettings.from_params(params["experiment"])
    champion, challenger = (
        versions.get("champion", CHAMPION),
        versions.get("challenger", CHALLENGER),
    )
    return store.start_experiment(champion, challenger, share, plan(settings, share), at=at)


def seed(store: Store, per_arm: int, arms: dict, experiment: dict, rng_seed: int = 1):
    """Log `per_arm` keyed estimates per arm in `experiment` and what their sellers did.

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
            tag = experiment["experiment_id"]
            rows.append(_row(pid, arm, round(estimate, 2), asking, experiment_id=tag))
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


WORSE = {"champion": (0.6, 0.06), "challenger": (0.3, 0.2)}
BETTER = {"champion": (0.3, 0.2), "challenger": (0.6, 0.06)}


def test_a_challenger_that_sells_less_and_errs_more_is_worse(store):
    seed(store, PER_ARM, WORSE, start(store))
    result = compare(store, PARAMS, as_of=AS_OF)
    assert (result["champion"], result["challenger"]) == (CHAMPION, CHALLENGER)
    by_arm = {a["arm"]: a for a in result["arms"]}
    assert by_arm["champion"]["listings"] == by_arm["challenger"]["listings"] == PER_ARM
    assert by_arm["champion"]["with_outcome"] == PER_ARM
    champ, chall = by_arm["champion"]["conversion"], by_arm["challenger"]["conversion"]
    assert champ["ci"][0] < champ["share"] < champ["ci"][1]
    assert 0.5 < champ["share"] < 0.7 and 0.2 < chall["share"] < 0.4
    assert result["srm"]["passed"]
    assert result["comparison"]["conversion"]["verdict"] == "worse"
    assert result["comparison"]["realised_mape"]["verdict"] == "worse"
    assert not result["promotion"]["allowed"]
    assert by_arm["champion"]["adjusted"]["towards_estimate_share"] == 1.0
    with pytest.raises(ReleaseError, match="conversion: challenger - champion = -0.[0-9]+"):
        require_experiment(result, CHALLENGER, CHAMPION)


def test_a_challenger_that_sells_more_and_errs_less_is_promoted_by_its_experiment(store):
    seed(store, PER_ARM, BETTER, start(store))
    result = compare(store, PARAMS, as_of=AS_OF)
    assert result["comparison"]["conversion"]["verdict"] == "better"
    assert result["promotion"] == {"allowed": True, "reasons": []}
    require_experiment(result, CHALLENGER, CHAMPION)  # no refusal
    with pytest.raises(ReleaseError, match="^no experiment ran m-other as its challenger$"):
        require_experiment(result, "m-other", CHAMPION)
    with pytest.raises(ReleaseError, match="^the champion of record is m-new, not the experi"):
        require_experiment(result, CHALLENGER, "m-new")


def test_below_the_planned_n_every_verdict_is_not_yet_known_with_the_n_still_needed(store):
    seed(store, 30, WORSE, start(store))
    result = compare(store, PARAMS, as_of=AS_OF)
    verdicts = {name: entry["verdict"] for name, entry in result["comparison"].items()}
    assert set(verdicts.values()) == {"not yet known"}
    need = result["comparison"]["conversion"]["planned"]
    assert need == [PER_ARM, PER_ARM]
    assert result["promotion"]["reasons"][0] == (
        f"conversion: not yet known, 30 champion and 30 challenger listings of {PER_ARM} and "
        f"{PER_ARM} planned ({PER_ARM - 30} and {PER_ARM - 30} still needed)"
    )


def test_the_same_store_gives_the_same_intervals_and_the_report_shows_the_checks(store):
    record = start(store)
    seed(store, 120, {"champion": (0.5, 0.1), "challenger": (0.5, 0.1)}, record)
    first, second = compare(store, PARAMS, as_of=AS_OF), compare(store, PARAMS, as_of=AS_OF)
    assert first == second
    rows = table_rows(first)
    assert [row[0] for row in rows[1:3]] == ["champion", "challenger"]
    assert rows[3][:2] == ("experiment", record["experiment_id"])
    assert rows[4][0] == "sample ratio" and rows[4][3] == "passed"
    assert "margin" in rows[6][3] and "planned" in rows[6][3]


def test_a_stale_champion_and_rows_outside_the_window_are_not_read(store):
    old = start(store, at=STARTED - dt.timedelta(days=30), champion="m-stale")
    store.stop_experiment(at=STARTED - dt.timedelta(days=1))
    stale = [  # many rows of an earlier experiment, and of this one before its start
        _row(f"s{i:031d}", "champion", 1.0, 2.0, model_version="m-stale", experiment_id=tag)
        for i, tag in enumerate([old["experiment_id"]] * 500)
    ]
    record = start(store)
    early = LOGGED - dt.timedelta(days=2)
    stale += [
        _row(f"e{i:031d}", "challenger", 1.0, 2.0, created_at=early, experiment_id=tag)
        for i, tag in enumerate([record["experiment_id"]] * 50)
    ]
    store.log_estimates(stale)
    seed(store, 100, BETTER, record)
    result = compare(store, PARAMS, as_of=AS_OF)
    assert result["experiment"]["id"] == record["experiment_id"]
    assert (result["champion"], result["challenger"]) == (CHAMPION, CHALLENGER)
    assert [a["listings"] for a in result["arms"]] == [100, 100]
    stopped = store.stop_experiment(at=LOGGED - dt.timedelta(minutes=1))
    assert compare(store, PARAMS, stopped, as_of=AS_OF)["srm"]["counts"] == [0, 0]


def test_a_listing_priced_five_times_counts_once_and_one_in_both_arms_is_left_out(store):
    record = start(store)
    tag = record["experiment_id"]
    rows = [
        _row(
            f"a{i:031d}",
            "champion",
            10_000.0 + i,
            11_000.0,
            experiment_id=tag,
            created_at=LOGGED + dt.timedelta(hours=i),
        )
        for i in range(5)
    ]
    for row in rows:
        row["inputs"]["listing_key"] = "ad-five"
    both = [
        _row(f"b{i:031d}", arm, 10_000.0, 11_000.0, experiment_id=tag)
        for i, arm in enumerate(["champion", "challenger"])
    ]
    for row in both:
        row["inputs"]["listing_key"] = "ad-both"
    store.log_estimates(rows + both)
    sold = dt.date(2026, 1, 15)  # reported on the third estimate: it belongs to the listing
    store.add_feedback(rows[2]["prediction_id"], sold_price=10_500.0, sold_at=sold, event="sold")
    found = outcomes(store, record, as_of=AS_OF)
    assert found["both_arms"] == 1
    [listing] = found["listings"]
    assert (listing["estimate"], listing["sold_price"], listing["days"]) == (10_000.0, 10_500.0, 10)
    result = compare(store, PARAMS, as_of=AS_OF)
    assert result["arms"][0]["listings"] == 1 and result["experiment"]["both_arms"] == 1


def test_two_experiments_split_the_listings_anew():
    keys = [f"listing-{i}" for i in range(20_000)]
    first = {k for k in keys if assign_arm(k, 0.3, "salt-one") == "challenger"}
    second = {k for k in keys if assign_arm(k, 0.3, "salt-two") == "challenger"}
    assert 0.28 < len(first) / len(keys) < 0.32
    assert 0.08 < len(first & second) / len(keys) < 0.10  # about 0.3 ** 2
    assert assign_arm(None, 1.0, "salt-one") == "champion"
    assert {k for k in keys if assign_arm(k, 0.3, "salt-one") == "challenger"} == first


def _promote(tmp_path, monkeypatch, capsys, arms, per_arm=PER_ARM, champion=CHAMPION):
    home = tmp_path / "home"
    store = Store(f"sqlite:///{home / 'carprice.db'}")
    store.create()
    seed(store, per_arm, arms, start(store))
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
    monkeypatch.setattr(promote_module, "champion_of_record", lambda home: champion)
    argv = ["promote", "--by-experiment", "--package", str(package), "--params", str(params)]
    code = main(argv)
    return code, capsys.readouterr().err


def test_promote_by_experiment_refuses_a_worse_challenger_with_the_numbers(
    tmp_path, monkeypatch, capsys
):
    code, err = _promote(tmp_path, monkeypatch, capsys, WORSE)
    assert code == 1
    assert "promote refused: the experiment does not support it" in err
    assert "conversion: challenger - champion = -0." in err
    assert "sample ratio" in err and "challenger - champion: conversion" in err


def test_promote_by_experiment_refuses_below_the_planned_n(tmp_path, monkeypatch, capsys):
    code, err = _promote(tmp_path, monkeypatch, capsys, BETTER, per_arm=20)
    assert code == 1
    assert f"20 champion and 20 challenger listings of {PER_ARM} and {PER_ARM} planned" in err


def test_promote_by_experiment_refuses_when_the_champion_changed(tmp_path, monkeypatch, capsys):
    code, err = _promote(tmp_path, monkeypatch, capsys, BETTER, champion="m-later")
    assert code == 1
    assert "promote refused: the champion of record is m-later, not the experiment's" in err


def test_promote_by_experiment_lets_a_better_challenger_through_to_the_release_checks(
    tmp_path, monkeypatch, capsys
):
    code, err = _promote(tmp_path, monkeypatch, capsys, BETTER)
    assert "m-challenger is not worse on conversion and realised error" in err
    assert "the experiment does not support it" not in err
    # the package here has no image: the ordinary release checks refuse it next
    assert code == 1 and "has no image" in err


def test_days_to_sell_count_from_the_listing_date_when_it_precedes_the_estimate(store):
    record = start(store)
    tag = record["experiment_id"]
    listed = _row("a" * 32, "champion", 10_000.0, 11_000.0, experiment_id=tag)
    listed["inputs"]["listed_at"] = "2025-12-26"  # online ten days before the estimate
    later = _row("b" * 32, "champion", 10_000.0, 11_000.0, experiment_id=tag)
    later["inputs"]["listed_at"] = "2026-02-01"  # after the estimate: cannot be right
    plain = _row("c" * 32, "champion", 10_000.0, 11_000.0, experiment_id=tag)
    store.log_estimates([listed, later, plain])
    for row in (listed, later, plain):
        sold = dt.date(2026, 1, 15)
        store.add_feedback(row["prediction_id"], sold_price=10_500.0, sold_at=sold, event="sold")
    # 2026-01-15 less 2025-12-26 is 20 days; the other two count from the estimate (01-05)
    days = sorted(r["days"] for r in outcomes(store, record, as_of=AS_OF)["listings"])
    assert days == [10, 10, 20]


def test_experiment_start_records_the_plan_and_stop_ends_the_window(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    package = tmp_path / "package"
    package.mkdir()
    (package / "package.json").write_text(json.dumps({"model_version": CHALLENGER}))
    monkeypatch.setenv("CARPRICE_HOME", str(home))
    monkeypatch.delenv("CARPRICE_DB_URL", raising=False)
    monkeypatch.delenv("CARPRICE_DB_PREFIX", raising=False)
    monkeypatch.setattr(promote_module, "champion_of_record", lambda home: CHAMPION)
    argv = ["experiment", "start", "--package", str(package), "--share", "0.3"]
    assert main(argv) == 0
    shown = json.loads(capsys.readouterr().out)
    assert "salt" not in shown and shown["share"] == 0.3 and shown["stopped_at"] is None
    planned = shown["plan"]["metrics"]["conversion"]
    assert planned["margin"] == 0.02 and planned["reason"]
    assert planned["planned_n"][1] < planned["planned_n"][0]  # 30% of the listings
    assert main(argv) == 2  # one experiment at a time
    assert "is running; stop it first" in capsys.readouterr().err
    assert main(["experiment", "stop"]) == 0
    assert json.loads(capsys.readouterr().out)["stopped_at"] is not None
    assert main(["experiment", "show"]) == 0
    assert f"experiment  {shown['experiment_id']}" in capsys.readouterr().out
