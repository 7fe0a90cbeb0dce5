"""The shadow challenger: it scores every request, its answers reach the log only."""

from __future__ import annotations

import pytest

from carprice.runtime import pointer
from serving.app import create_app
from tests import readback
from tests.serving.conftest import golf, with_key


@pytest.fixture
def shadowed(make_bundle, bundle_dir, home):
    app = create_app(
        {
            "BUNDLE": bundle_dir,
            "CHALLENGER_BUNDLE": make_bundle("challenger-7"),
            "CARPRICE_HOME": home,
            "DB_URL": f"sqlite:///{home / 'carprice.db'}",
        }
    )
    yield app
    app.extensions["carprice"].store.dispose()


def test_the_challenger_is_logged_but_never_returned(shadowed):
    response = shadowed.test_client().post("/v1/estimates", json={"listings": [golf()]})
    body = response.get_json()
    assert body["model_version"] == "test-1"
    assert "challenger" not in response.get_data(as_text=True)
    [estimate] = body["estimates"]
    row = readback.prediction(shadowed.extensions["carprice"].store, estimate["prediction_id"])
    assert row["model_version"] == "test-1"
    assert row["challenger_version"] == "challenger-7"
    assert row["challenger_status"] == "ok"
    assert row["challenger_price"] == pytest.approx(estimate["price"])  # same trees here
    assert row["challenger_error"] is None


def test_a_failing_challenger_never_fails_the_request(shadowed, monkeypatch):
    runtime = shadowed.extensions["carprice"]

    def broken(listings):
        raise RuntimeError("challenger exploded")

    monkeypatch.setattr(runtime.challenger, "estimate", broken)
    client = shadowed.test_client()
    response = client.post("/v1/estimates", json={"listings": [golf(), golf(year=2020)]})
    assert response.status_code == 200
    for estimate in response.get_json()["estimates"]:
        row = readback.prediction(runtime.store, estimate["prediction_id"])
        assert "challenger exploded" in row["challenger_error"]
        assert row["challenger_price"] is None and row["price"] == estimate["price"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "carprice_challenger_failures_total 1.0" in metrics


def test_a_challenger_answering_nonsense_never_fails_the_request(shadowed, monkeypatch):
    runtime = shadowed.extensions["carprice"]
    monkeypatch.setattr(runtime.challenger, "estimate", lambda listings: [{"weird": 1}])
    client = shadowed.test_client()
    response = client.post("/v1/estimates", json={"listings": [golf(), golf(year=2019)]})
    assert response.status_code == 200
    pid = response.get_json()["estimates"][1]["prediction_id"]
    assert (
        "1 estimates for 2 listings" in readback.prediction(runtime.store, pid)["challenger_error"]
    )


def test_an_unloadable_challenger_leaves_the_champion_serving(bundle_dir, home, tmp_path):
    broken = tmp_path / "broken-bundle"
    broken.mkdir()
    app = create_app(
        {
            "BUNDLE": bundle_dir,
            "CHALLENGER_BUNDLE": broken,
            "CARPRICE_HOME": home,
            "DB_URL": f"sqlite:///{home / 'carprice.db'}",
        }
    )
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    assert client.post("/v1/estimates", json={"listings": [golf()]}).status_code == 200
    assert with_key(client).get("/v1/model").get_json()["challenger_version"] is None


def test_the_challenger_pointer_configures_the_shadow(make_bundle, bundle_dir, home):
    pointer.swap_pointer(home, bundle_dir)
    pointer.swap_pointer(home, make_bundle("challenger-8"), name=pointer.CHALLENGER)
    app = create_app({"CARPRICE_HOME": home, "DB_URL": f"sqlite:///{home / 'carprice.db'}"})
    info = with_key(app.test_client()).get("/v1/model").get_json()
    assert (info["model_version"], info["challenger_version"]) == ("test-1", "challenger-8")
