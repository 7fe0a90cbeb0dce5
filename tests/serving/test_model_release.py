"""GET /v1/model tells a keyed client the release it serves: number, lineage, gate results,
gate 2's test metrics and the parameters, as `carprice promote` recorded them."""

from __future__ import annotations

import json
import re

import pytest

from carprice.config import PROJECT_ROOT, load_params
from carprice.release import promote
from serving import releases
from tests.serving.conftest import with_key

METRICS = {"rows": 3761, "mape": 0.0912, "median_ape": 0.0641, "coverage": 0.801}


def write_release(home, number: str, model_version: str, params: dict, gate3: bool = True):
    """A release folder as `carprice promote` leaves it (the files the service reads)."""
    folder = promote.releases_dir(home) / number
    (folder / "gate2").mkdir(parents=True)
    gates = {"gate1": True, "gate2": True, "gate3": gate3}
    manifest = {
        "release": number,
        "registry_version": number,
        "model_version": model_version,
        "created_at": "2026-03-02T10:00:00+00:00",
        "git_commit": "abc1234",
        "snapshot": {"id": "s-1", "sha256": "0" * 64, "rows": 12000},
        "params_hash": "p-1",
        "params_file": "params.yaml",
        "params": params,
        "gates": {g: {"passed": ok, "report": f"{g}/x.json"} for g, ok in gates.items()},
    }
    (folder / promote.MANIFEST).write_text(json.dumps(manifest))
    report = {"model_version": model_version, "passed": True, "reasons": [], "metrics": METRICS}
    (folder / "gate2" / promote.GATE_FILES["gate2"][0]).write_text(json.dumps(report))


def test_the_service_reads_the_files_promote_writes():
    assert releases.MANIFEST == promote.MANIFEST
    assert releases.GATE2_REPORT.as_posix() == f"gate2/{promote.GATE_FILES['gate2'][0]}"


@pytest.fixture
def released_app(bundle_dir, tmp_path):
    from serving.app import create_app

    home = tmp_path / "home"
    params = load_params(PROJECT_ROOT / "params.yaml")
    write_release(home, "2", "test-1", {"train": {"num_boost_round": 1}}, gate3=False)
    write_release(home, "3", "test-1", params)  # the same model released again: the latest
    write_release(home, "10", "other", params)
    app = create_app({"BUNDLE": bundle_dir, "CARPRICE_HOME": home})
    yield app, params
    app.extensions["carprice"].store.dispose()


def test_a_keyed_client_gets_the_release_its_gates_metrics_and_parameters(released_app):
    app, params = released_app
    body = with_key(app.test_client()).get("/v1/model").get_json()
    release = body["release"]
    assert release["release"] == "3"
    assert release["gates"] == {"gate1": True, "gate2": True, "gate3": True}
    assert release["test_metrics"] == METRICS
    assert release["params"] == params
    assert release["git_commit"] == "abc1234" and release["snapshot"]["id"] == "s-1"
    anonymous = app.test_client().get("/v1/model").get_json()
    assert anonymous == {"model_version": "test-1"}


def test_a_bundle_outside_any_release_has_no_release(keyed_client):
    assert keyed_client.get("/v1/model").get_json()["release"] is None


def test_the_docs_name_every_field_of_the_keyed_answer(released_app):
    """docs/serving.md's **Model.** paragraph names every field of the keyed answer and of its
    release."""
    app, _ = released_app
    text = (PROJECT_ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    section = re.search(r"^\*\*Model\.\*\*(.*?)\n\n\*\*", text, re.S | re.M)
    assert section, "docs/serving.md has no **Model.** paragraph"
    body = with_key(app.test_client()).get("/v1/model").get_json()
    names = [*body, *body["release"]]
    assert [k for k in names if f"`{k}`" not in section.group(1)] == []
