"""A bundle serves only once verified: a bad checksum is refused, and the service says why."""

from __future__ import annotations

import os
import shutil

import pytest

from carprice.cli.main import main
from carprice.runtime import pointer
from serving.app import create_app
from tests.serving.conftest import golf


@pytest.fixture
def tampered(bundle_dir, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(bundle_dir, copy)
    with (copy / "model.txt").open("a") as fh:
        fh.write("\n")
    return copy


def _app(home, **config):
    return create_app(
        {"CARPRICE_HOME": home, "DB_URL": f"sqlite:///{home / 'carprice.db'}", **config}
    )


def test_a_tampered_bundle_is_refused_and_readiness_says_why(tampered, home):
    client = _app(home, BUNDLE=tampered).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "model.txt does not match its checksum" in ready.get_json()["detail"]
    assert client.get("/healthz").status_code == 200  # alive, just not ready
    refused = client.post("/v1/estimates", json={"listings": [golf()]})
    assert refused.status_code == 503 and refused.mimetype == "application/problem+json"


def test_a_missing_bundle_file_is_refused(bundle_dir, tmp_path, home):
    copy = tmp_path / "incomplete"
    shutil.copytree(bundle_dir, copy)
    (copy / "feature_spec.json").unlink()
    ready = _app(home, BUNDLE=copy).test_client().get("/readyz")
    assert ready.status_code == 503 and "feature_spec.json is missing" in ready.get_json()["detail"]


def test_without_any_bundle_the_service_is_not_ready(home):
    ready = _app(home).test_client().get("/readyz")
    assert ready.status_code == 503 and "no model bundle" in ready.get_json()["detail"]


def test_the_deploy_pointer_names_the_served_bundle(make_bundle, home):
    pointer.swap_pointer(home, make_bundle("pointed-3"))
    body = _app(home).test_client().get("/readyz").get_json()
    assert body["status"] == "ready" and body["model_version"] == "pointed-3"


def test_serve_refuses_a_tampered_bundle_before_starting(tampered, home, monkeypatch, capsys):
    monkeypatch.setenv("CARPRICE_HOME", str(home))
    monkeypatch.setenv("CARPRICE_BUNDLE", "")
    monkeypatch.setattr("os.execv", lambda *a: pytest.fail("gunicorn must not start"))
    assert main(["serve", "--local", "--bundle", str(tampered), "--port", "8999"]) == 2
    assert "model.txt does not match its checksum" in capsys.readouterr().err


def test_serve_without_a_bundle_says_how_to_name_one(home, monkeypatch, capsys):
    monkeypatch.setenv("CARPRICE_HOME", str(home))
    monkeypatch.setenv("CARPRICE_BUNDLE", "")  # recorded, so the value cmd_serve sets is undone
    monkeypatch.setattr("os.execv", lambda *a: pytest.fail("gunicorn must not start"))
    assert main(["serve", "--local"]) == 2
    assert "--bundle" in capsys.readouterr().err


def test_serve_execs_gunicorn_with_the_verified_bundle(bundle_dir, home, monkeypatch):
    calls = []
    monkeypatch.setenv("CARPRICE_HOME", str(home))
    monkeypatch.setenv("CARPRICE_BUNDLE", "")  # recorded, so the value cmd_serve sets is undone
    monkeypatch.setattr("os.execv", lambda path, argv: calls.append(argv))
    main(["serve", "--local", "--bundle", str(bundle_dir), "--port", "8123", "--workers", "3"])
    [argv] = calls
    assert argv[1:3] == ["-m", "gunicorn"]
    assert argv[argv.index("--bind") + 1] == "127.0.0.1:8123"
    assert argv[argv.index("--workers") + 1] == "3"
    assert argv[-1] == "serving.app:create_app()"
    assert os.environ["CARPRICE_BUNDLE"] == str(bundle_dir.resolve())
