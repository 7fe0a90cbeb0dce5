"""A/B mode: a share of keyed listings priced (and answered) by the challenger, sticky per key."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from carprice.runtime import pointer
from carprice.runtime.bundle import load_bundle, write_bundle
from carprice.runtime.experiment import assign_arm
from carprice.runtime.home import file_sha256
from carprice.runtime.predictor import Predictor
from carprice.runtime.spool import drain
from carprice.runtime.store import Store
from serving import records
from serving.app import create_app
from tests import readback
from tests.reliability.conftest import call, start_gunicorn  # noqa: F401  (a fixture)
from tests.serving.conftest import golf

KEYS = [f"ad-{i}" for i in range(40)]
SHARE = 0.5


@pytest.fixture(scope="session")
def other_bundle(tmp_path_factory, params, market_frame):
    """A challenger whose prices differ from the champion's (fewer boosting rounds)."""
    from carprice.model.train import TrainParams, split_of, train

    frame = market_frame
    tp = TrainParams.from_params(params["train"])
    tp = dataclasses.replace(tp, num_boost_round=40, quantile_boost_round=20)
    model = train(frame, split_of(frame, tp.test_share, tp.calibration_share), tp)
    counts = frame.groupby(["make", "model"]).size()
    path = tmp_path_factory.mktemp("challenger") / "challenger-2"
    write_bundle(
        path,
        boosters=model.boosters,
        spec=model.spec,
        supported=[key for key, n in counts.items() if n >= 10],
        interval=model.interval,
        metadata={"model_version": "challenger-2", "lineage": {"source": "tests"}},
    )
    return path


def _app(home, bundle_dir, challenger, share, experiment_id=None):
    return create_app(
        {
            "BUNDLE": bundle_dir,
            "CHALLENGER_BUNDLE": challenger,
            "AB_SHARE": share,
            "EXPERIMENT_ID": experiment_id,
            "CARPRICE_HOME": home,
            "DB_URL": f"sqlite:///{home / 'carprice.db'}",
        }
    )


@pytest.fixture
def ab_app(home, bundle_dir, other_bundle):
    app = _app(home, bundle_dir, other_bundle, SHARE)
    yield app
    app.extensions["carprice"].store.dispose()


def _listings(keys=KEYS):
    return [golf(mileage=20_000 + 1_000 * i, listing_key=k) for i, k in enumerate(keys)]


def _direct(bundle, listings) -> list[float]:
    """Prices straight from a bundle's predictor (encoder keys, as the service passes them)."""
    predictor = Predictor(load_bundle(bundle), compiled=True)
    rows = [
        {
            **{k: v for k, v in x.items() if k not in ("offer_type", "listing_key")},
            "offerType": x["offer_type"],
        }
        for x in listings
    ]
    return [r["price"] for r in predictor.estimate(rows)]


def test_both_arms_answer_with_their_own_model_and_are_logged_so(ab_app, bundle_dir, other_bundle):
    client = ab_app.test_client()
    listings = _listings()
    body = client.post("/v1/estimates", json={"listings": listings}).get_json()
    assert body["model_version"] == "test-1"  # the top level stays the champion's
    arms = [e["arm"] for e in body["estimates"]]
    assert arms == [assign_arm(k, SHARE, "") for k in KEYS]
    assert {"champion", "challenger"} == set(arms)
    champion_prices, challenger_prices = (
        _direct(bundle_dir, listings),
        _direct(other_bundle, listings),
    )
    assert champion_prices != challenger_prices
    store = ab_app.extensions["carprice"].store
    for i, estimate in enumerate(body["estimates"]):
        expected = challenger_prices[i] if estimate["arm"] == "challenger" else champion_prices[i]
        version = "challenger-2" if estimate["arm"] == "challenger" else "test-1"
        assert estimate["price"] == pytest.approx(expected)
        assert estimate["model_version"] == version
        row = readback.prediction(store, estimate["prediction_id"])
        assert (row["arm"], row["model_version"]) == (estimate["arm"], version)
        assert row["price"] == estimate["price"]
        assert row["inputs"]["listing_key"] == KEYS[i]
        if estimate["arm"] == "champion":  # the challenger still shadows the champion's arm
            assert row["challenger_price"] == pytest.approx(challenger_prices[i])
        else:
            assert row["challenger_price"] is None
    metrics = client.get("/metrics").get_data(as_text=True)
    assert (
        f'carprice_ab_estimates_total{{arm="challenger"}} {float(arms.count("challenger"))}'
        in metrics
    )


def test_a_running_experiment_assigns_by_its_salt_and_share_and_tags_its_rows(
    home, bundle_dir, other_bundle
):
    store = Store(f"sqlite:///{home / 'carprice.db'}")
    store.create()
    record = store.start_experiment("test-1", "challenger-2", 0.25, plan={"metrics": {}})
    store.dispose()
    app = _app(home, bundle_dir, other_bundle, SHARE)  # the record's share wins
    try:
        client = app.test_client()
        ready = client.get("/readyz").get_json()["experiment"]
        arms = ready.pop("arms")
        assert ready == {
            "id": record["experiment_id"],
            "challenger_version": "challenger-2",
            "share": 0.25,
        }
        for arm, path in (("champion", bundle_dir), ("challenger", other_bundle)):
            assert arms[arm] == {
                "image_id": None,  # not in a container
                "model_version": "test-1" if arm == "champion" else "challenger-2",
                "bundle_checksums_sha256": file_sha256(path / "checksums.json"),
            }
        listings = _listings() + [golf()]  # and one without a key
        body = client.post("/v1/estimates", json={"listings": listings}).get_json()
        arms = [e["arm"] for e in body["estimates"]]
        assert arms[:-1] == [assign_arm(k, 0.25, record["salt"]) for k in KEYS]
        assert arms[:-1] != [assign_arm(k, 0.25, "") for k in KEYS]  # the salt counts
        logged = [
            readback.prediction(app.extensions["carprice"].store, e["prediction_id"])
            for e in body["estimates"]
        ]
        assert [r["experiment_id"] for r in logged] == [record["experiment_id"]] * len(KEYS) + [
            None
        ]
    finally:
        app.extensions["carprice"].store.dispose()


def test_a_listing_without_a_key_is_always_the_champions(home, bundle_dir, other_bundle):
    app = _app(home, bundle_dir, other_bundle, 1.0)
    try:
        client = app.test_client()
        [estimate] = client.post("/v1/estimates", json={"listings": [golf()]}).get_json()[
            "estimates"
        ]
        assert (estimate["arm"], estimate["model_version"]) == ("champion", "test-1")
        [keyed] = client.post("/v1/estimates", json={"listings": _listings(["k"])}).get_json()[
            "estimates"
        ]
        assert (keyed["arm"], keyed["model_version"]) == ("challenger", "challenger-2")
    finally:
        app.extensions["carprice"].store.dispose()


def test_share_zero_keeps_the_challenger_in_the_shadow(home, bundle_dir, other_bundle):
    app = _app(home, bundle_dir, other_bundle, 0)
    try:
        listings = _listings()
        body = app.test_client().post("/v1/estimates", json={"listings": listings}).get_json()
        challenger_prices = _direct(other_bundle, listings)
        store = app.extensions["carprice"].store
        for i, estimate in enumerate(body["estimates"]):
            assert (estimate["arm"], estimate["model_version"]) == ("champion", "test-1")
            row = readback.prediction(store, estimate["prediction_id"])
            assert (row["arm"], row["model_version"]) == ("champion", "test-1")
            assert row["challenger_version"] == "challenger-2"
            assert row["challenger_price"] == pytest.approx(challenger_prices[i])
    finally:
        app.extensions["carprice"].store.dispose()


@pytest.mark.parametrize("bad", ["", "x" * 65, 17, ["a"]])
def test_a_bad_listing_key_is_named(client, bad):
    response = client.post("/v1/estimates", json={"listings": [golf(listing_key=bad)]})
    assert response.status_code == 422
    [error] = response.get_json()["errors"]
    assert error["field"] == "listings[0].listing_key"
    assert "1 to 64 characters" in error["message"]


@pytest.mark.parametrize("bad", ["half", "1.5", "-0.1", "nan"])
def test_a_bad_share_is_refused_naming_the_setting(home, bundle_dir, monkeypatch, bad):
    monkeypatch.setenv("CARPRICE_AB_SHARE", bad)
    with pytest.raises(
        ValueError, match=f"CARPRICE_AB_SHARE must be a number between 0 and 1, got '{bad}'"
    ):
        create_app({"BUNDLE": bundle_dir, "CARPRICE_HOME": home})


def test_spooled_rows_keep_their_arm_through_the_drain(ab_app):
    rt = ab_app.extensions["carprice"]
    with ab_app.test_request_context():
        answers = [
            {
                "prediction_id": f"{i:032x}",
                "status": "ok",
                "price": 1.0,
                "price_low": 1.0,
                "price_high": 1.0,
                "arm": arm,
                "model_version": version,
            }
            for i, (arm, version) in enumerate(
                [("challenger", "challenger-2"), ("champion", "test-1")]
            )
        ]
        listing = {
            "make": "VW",
            "model": "Golf",
            "fuel": "Diesel",
            "gear": "Manual",
            "offerType": "Used",
            "mileage": 1,
            "hp": 100,
            "year": 2019,
        }
        rows = records.log_rows(
            rt,
            "test-1",
            "r" * 32,
            [listing] * 2,
            [None] * 2,
            answers,
            1.0,
            ["challenger", "champion"],
        )
    rt.spool.put_predictions(rows)
    assert drain(rt.spool, rt.store)[0] == 2
    assert readback.prediction(rt.store, f"{0:032x}")["arm"] == "challenger"
    assert readback.prediction(rt.store, f"{1:032x}")["model_version"] == "test-1"


def test_the_arm_is_sticky_across_requests_and_workers(
    start_gunicorn,  # noqa: F811
    tmp_path,
    make_bundle,
    other_bundle,
):
    home = tmp_path / "state"
    pointer.swap_pointer(home, make_bundle("gunicorn-1"))
    server = start_gunicorn(
        home, env={"CARPRICE_AB_SHARE": str(SHARE), "CARPRICE_CHALLENGER_BUNDLE": str(other_bundle)}
    )
    assert len(server.workers()) == 2
    seen: dict[str, set] = {k: set() for k in KEYS}
    for _ in range(8):  # a new connection each time: the workers take turns
        status, body = call(server.port, "POST", "/v1/estimates", {"listings": _listings()})
        assert status == 200
        for key, estimate in zip(KEYS, body["estimates"], strict=True):
            seen[key].add((estimate["arm"], estimate["model_version"], estimate["price"]))
    assert all(len(answers) == 1 for answers in seen.values())
    arms = {key: next(iter(answers))[0] for key, answers in seen.items()}
    assert arms == {k: assign_arm(k, SHARE, "") for k in KEYS}
    store = Store(f"sqlite:///{home / 'carprice.db'}")
    try:
        with store.engine.connect() as conn:
            logged = conn.execute(
                sa.select(
                    store.predictions.c.arm, store.predictions.c.model_version, sa.func.count()
                ).group_by(store.predictions.c.arm, store.predictions.c.model_version)
            ).all()
    finally:
        store.dispose()
    counts = {(arm, version): n for arm, version, n in logged}
    challengers = sum(a == "challenger" for a in arms.values())
    assert counts == {
        ("challenger", "challenger-2"): 8 * challengers,
        ("champion", "gunicorn-1"): 8 * (len(KEYS) - challengers),
    }


@pytest.mark.parametrize("bad", ["2026-02-30", "26-01-05", 20260105, "2026-1-5"])
def test_a_listing_date_that_is_not_a_calendar_date_is_named(bad, home, bundle_dir):
    client = _app(home, bundle_dir, None, 0.0).test_client()
    answer = client.post("/v1/estimates", json={"listings": [{**golf(), "listed_at": bad}]})
    assert answer.status_code == 422
    assert answer.get_json()["errors"] == [
        {"field": "listings[0].listed_at", "message": "must be a date written YYYY-MM-DD"}
    ]


def test_a_listing_date_is_logged_with_the_estimate(home, bundle_dir):
    app = _app(home, bundle_dir, None, 0.0)
    listing = {**golf(), "listed_at": "2026-01-05", "listing_key": "ad-1"}
    answer = app.test_client().post("/v1/estimates", json={"listings": [listing]})
    assert answer.status_code == 200
    store = app.extensions["carprice"].store
    with store.engine.connect() as conn:
        [inputs] = conn.execute(sa.select(store.predictions.c.inputs)).scalars().all()
    assert inputs["listed_at"] == "2026-01-05" and inputs["listing_key"] == "ad-1"


def test_a_named_experiment_is_served_only_while_it_runs_for_these_two_models(
    home, bundle_dir, other_bundle
):
    """The production container is started with the experiment's id: it joins that record
    (salt and share), and serves the champion alone when the record is stopped or another
    experiment runs, so the release tooling sees no experiment on /readyz."""
    store = Store(f"sqlite:///{home / 'carprice.db'}")
    store.create()
    first = store.start_experiment("test-1", "challenger-2", 0.25, plan={"metrics": {}})
    store.stop_experiment()
    second = store.start_experiment("test-1", "challenger-2", 0.75, plan={"metrics": {}})
    store.dispose()
    for named, expected in ((second, 0.75), (first, None)):
        app = _app(home, bundle_dir, other_bundle, SHARE, named["experiment_id"])
        try:
            client = app.test_client()
            ready = client.get("/readyz").get_json()
            body = client.post("/v1/estimates", json={"listings": _listings()}).get_json()
        finally:
            app.extensions["carprice"].store.dispose()
        arms = [e["arm"] for e in body["estimates"]]
        if expected is None:
            assert "experiment" not in ready and set(arms) == {"champion"}
        else:
            assert ready["experiment"]["id"] == second["experiment_id"]
            assert ready["experiment"]["share"] == expected
            assert arms == [assign_arm(k, expected, second["salt"]) for k in KEYS]
