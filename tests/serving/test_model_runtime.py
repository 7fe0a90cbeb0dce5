"""GET /v1/model says what runs: the tree scorer in use and the image id (gate 3 checks both).

The scorer is set up explicitly in each test (`Predictor.compiled`), so the tests hold whichever
scorer this machine would pick by itself.
"""

from __future__ import annotations

import pytest

from carprice.release import checks
from carprice.release.conformance import conforms
from carprice.runtime.predictor import Predictor

IMAGE = "0123456789abcdef" * 4


class FlaskClient:
    """gate 3's `Client.call` over a Flask test client."""

    def __init__(self, client):
        self.client = client

    def call(self, method, path, body=None, raw=None, ctype=None):
        response = self.client.open(path, method=method, json=body)
        return response.status_code, response.content_type, response.get_json(silent=True)


@pytest.fixture
def client(keyed_client):
    """The model's details need an API key."""
    return keyed_client


@pytest.mark.parametrize(("compiled", "scorer"), [(True, "compiled"), (False, "lightgbm")])
def test_the_model_answer_names_the_scorer_in_use(client, monkeypatch, compiled, scorer):
    monkeypatch.setattr(Predictor, "compiled", property(lambda _self: compiled))
    response = client.get("/v1/model")
    assert response.status_code == 200
    assert response.get_json()["runtime"]["scorer"] == scorer


def test_the_scorer_is_the_loaded_predictors(client, app):
    compiled = app.extensions["carprice"].champion.compiled
    scorer = client.get("/v1/model").get_json()["runtime"]["scorer"]
    assert scorer == ("compiled" if compiled else "lightgbm")


def test_outside_a_container_the_image_id_is_null(client, monkeypatch):
    monkeypatch.delenv("CARPRICE_IMAGE_ID", raising=False)
    assert client.get("/v1/model").get_json()["runtime"]["image_id"] is None
    monkeypatch.setenv("CARPRICE_IMAGE_ID", "")
    assert client.get("/v1/model").get_json()["runtime"]["image_id"] is None


def test_in_a_container_the_image_id_is_the_one_it_was_given(client, monkeypatch):
    monkeypatch.setenv("CARPRICE_IMAGE_ID", IMAGE)
    response = client.get("/v1/model")
    assert response.get_json()["runtime"]["image_id"] == IMAGE
    doc = client.get("/openapi.json").get_json()
    body = response.get_json()
    assert conforms(doc, "GET", "/v1/model", 200, response.content_type, body) == []


def test_gate_3_runtime_check_fails_a_service_that_fell_back(client, monkeypatch):
    monkeypatch.setattr(Predictor, "compiled", property(lambda _self: False))
    monkeypatch.setenv("CARPRICE_IMAGE_ID", IMAGE)
    passed, detail, _ = checks.runtime(FlaskClient(client), "compiled", IMAGE, "container")
    assert not passed
    assert detail == "the container scores with lightgbm, production uses the compiled scorer"


def test_gate_3_runtime_check_passes_the_expected_scorer_and_image(client, monkeypatch):
    monkeypatch.setattr(Predictor, "compiled", property(lambda _self: True))
    monkeypatch.setenv("CARPRICE_IMAGE_ID", IMAGE)
    passed, detail, reported = checks.runtime(FlaskClient(client), "compiled", IMAGE, "container")
    assert passed, detail
    assert reported == {"scorer": "compiled", "image_id": IMAGE}
    passed, detail, _ = checks.runtime(FlaskClient(client), "compiled", "f" * 64, "container")
    assert not passed and "gate 3 started " + "f" * 64 in detail
