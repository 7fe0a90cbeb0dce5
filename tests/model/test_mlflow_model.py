"""The registered model is a real MLflow model, and the runs say what made it.

One train/register cycle runs through the CLI in a temporary working directory with its own
CARPRICE_HOME and artifact root: simulate, ingest, gate 1, train, gate 2. The champion is then
loaded with `mlflow.pyfunc.load_model` and served with `mlflow models serve`, and both must
answer exactly what the HTTP API answers for the same listings.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from carprice.config import PROJECT_ROOT, Paths
from carprice.model import registry
from tests.conftest import run_cli

BIN = Path(sys.executable).parent
COLUMNS = ("status", "price", "price_low", "price_high", "reason")
API_FIELDS = ("make", "model", "fuel", "gear", "offer_type", "mileage", "hp", "year")


@dataclass
class Cycle:
    root: Path
    home: Path
    artifacts: Path
    snapshot: Path
    cwd_had_mlruns: bool

    @property
    def paths(self) -> Paths:
        return Paths(root=self.root, home=self.home, artifact_root=self.artifacts)

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow.db'}"


def _step(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    proc = run_cli(*args, cwd=root, env=env)
    assert proc.returncode in (0, 1), f"carprice {args[0]}: {proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def cycle(tmp_path_factory, params) -> Cycle:
    """Simulate a week, ingest, gate 1, train and gate 2 with a quick model, via the CLI."""
    root = tmp_path_factory.mktemp("mlflow-cycle")
    cwd_had_mlruns = (Path.cwd() / "mlruns").exists()
    quick = copy.deepcopy(params)
    quick["train"].update(num_boost_round=120, quantile_boost_round=40)
    quick["gate1"]["min_clean_rows"] = 500
    (root / "params.yaml").write_text(yaml.safe_dump(quick, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "CARPRICE_ROOT")}
    env.update(CARPRICE_HOME=str(root / "home"), CARPRICE_ARTIFACT_ROOT=str(root / "artifact-root"))
    sim = ("--weeks", "1", "--start", "2026-03-02", "--seed", "7", "--listings-per-week", "4000")
    assert _step(root, env, "simulate", *sim, "--out", "raw").returncode == 0
    snapshot = Path(_step(root, env, "ingest", "--listings", "raw").stdout.strip().splitlines()[-1])
    params_arg = ("--params", "params.yaml")
    validate = ("validate", "--listings", str(snapshot), "--out", "validated", *params_arg)
    assert _step(root, env, *validate).returncode == 0
    train = ("train", "--data", "validated", "--out", "model", *params_arg)
    assert _step(root, env, *train).returncode == 0
    # A quick model may fail gate 2; its reports are attached to the run either way.
    _step(root, env, "evaluate", "--data", "validated", "--model", "model", "--out", "evaluation",
          *params_arg)  # fmt: skip
    yield Cycle(root, root / "home", root / "artifact-root", snapshot, cwd_had_mlruns)
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # configure() below exported the test registry


@pytest.fixture(scope="module")
def client(cycle):
    from mlflow import MlflowClient

    registry.configure(cycle.paths)
    return MlflowClient()


@pytest.fixture(scope="module")
def champion(cycle, client) -> str:
    """Version 1 as the champion, the way promote names it."""
    registry.set_alias(registry.CHAMPION, "1")
    return "1"


@pytest.fixture(scope="module")
def api(cycle, champion, tmp_path_factory):
    """The Flask app serving the champion's bundle, as the service does."""
    from serving.app import create_app

    bundle = registry.by_alias(registry.CHAMPION, cycle.home / "registry-cache").path
    home = tmp_path_factory.mktemp("api-home")
    app = create_app({"BUNDLE": bundle, "CARPRICE_HOME": home, "DB_URL": f"sqlite:///{home}/x.db"})
    yield app.test_client()
    app.extensions["carprice"].store.dispose()


@pytest.fixture(scope="module")
def listings(cycle) -> list[dict]:
    """Held-in listings of many car models (priced and unsupported) plus a car nobody sells."""
    clean = pd.read_parquet(cycle.root / "validated" / "clean.parquet")
    rows = clean.drop_duplicates(["make", "model"]).head(12).to_dict("records")
    out = [_as_api(r) for r in rows] + [{**_as_api(rows[0]), "make": "Trabant", "model": "601"}]
    return [{k: int(v) if k in ("mileage", "hp", "year") else v for k, v in r.items()} for r in out]


def _as_api(row: dict) -> dict:
    return {f: row["offerType" if f == "offer_type" else f] for f in API_FIELDS}


def _api_estimates(api, listings: list[dict]) -> list[dict]:
    response = api.post("/v1/estimates", json={"listings": listings})
    assert response.status_code == 200, response.get_data(as_text=True)
    return [{c: e.get(c) for c in COLUMNS} for e in response.get_json()["estimates"]]


def _rows(frame: pd.DataFrame) -> list[dict]:
    def plain(v):
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    return [{c: plain(r[c]) for c in COLUMNS} for r in frame.to_dict("records")]


def test_the_champion_loads_as_a_pyfunc_and_prices_exactly_as_the_api(api, listings, champion):
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}")
    frame = pd.DataFrame(listings, columns=list(API_FIELDS))
    got = _rows(model.predict(frame))
    want = _api_estimates(api, listings)
    assert got == want
    statuses = {e["status"] for e in want}
    assert statuses == {"ok", "unsupported"}  # priced cars and refused ones, with the reason
    assert want[-1]["reason"] and "Trabant 601" in want[-1]["reason"]
    # One listing per call: the predictor's single-row path, as a one-listing request takes it.
    for listing in (listings[0], listings[-1]):
        one = _rows(model.predict(pd.DataFrame([listing], columns=list(API_FIELDS))))
        assert one == _api_estimates(api, [listing])


def test_a_listing_the_api_rejects_is_invalid_with_the_apis_message(api, listings, champion):
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}")
    bad = {**listings[0], "mileage": -5}
    response = api.post("/v1/estimates", json={"listings": [bad]})
    assert response.status_code == 422
    assert "listings[0].mileage" in response.get_data(as_text=True)
    out = _rows(model.predict(pd.DataFrame([listings[1], bad], columns=list(API_FIELDS))))
    assert out[0] == _api_estimates(api, [listings[1]])[0]
    assert out[1]["status"] == "invalid" and out[1]["price"] is None
    message = response.get_json()["errors"][0]["message"]
    assert out[1]["reason"] == f"mileage: {message}"  # the API's words, field named


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str, body: dict | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group (the CLI and its uvicorn), forcibly if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


def test_mlflow_models_serve_answers_invocations_as_the_api(cycle, api, listings, champion):
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": cycle.tracking_uri}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the server runs the venv's uvicorn
    log = (cycle.root / "models-serve.log").open("w")
    model_uri = f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}"
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    proc = subprocess.Popen(
        [*cmd, "-h", "127.0.0.1", "-p", str(port)],
        cwd=cycle.root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (cycle.root / "models-serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow models serve not ready in 120 s"
            try:
                if _call(f"{base}/ping", timeout=2)[0] == 200:
                    break
            except (OSError, urllib.error.URLError):
                time.sleep(0.5)
        status, body = _call(f"{base}/invocations", {"dataframe_records": listings}, timeout=30)
    finally:
        _stop(proc)
        log.close()
    assert status == 200
    # Strict JSON (no NaN literals): a price the service does not give is null, as in the API.
    strict = json.loads(body, parse_constant=lambda name: pytest.fail(f"{name} in the answer"))
    got = [{c: p.get(c) for c in COLUMNS} for p in strict["predictions"]]
    assert got == _api_estimates(api, listings)


def test_the_run_records_the_snapshot_as_its_dataset_input_and_its_source(cycle, client):
    version = client.get_model_version(registry.MODEL_NAME, "1")
    run = client.get_run(version.run_id)
    manifest = json.loads(cycle.snapshot.with_suffix(".json").read_text())
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    assert manifest["parquet_sha256"].startswith(dataset.digest) and len(dataset.digest) == 36
    assert str(cycle.snapshot) in dataset.source
    tags = {t.key: t.value for t in inputs[0].tags}
    assert tags["mlflow.data.context"] == "training"
    assert tags["snapshot_sha256"] == manifest["parquet_sha256"]
    assert tags["rows"] == str(manifest["rows"])
    assert run.data.tags["mlflow.source.name"] == "carprice train"
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    if head:
        assert run.data.tags["mlflow.source.git.commit"] == head
        assert run.data.tags["mlflow.source.git.dirty"] in ("true", "false")


def test_every_gate_report_is_an_artifact_of_the_run(cycle, client, tmp_path):
    run_id = client.get_model_version(registry.MODEL_NAME, "1").run_id

    def names(gate: str) -> set[str]:
        return {Path(a.path).name for a in client.list_artifacts(run_id, f"reports/{gate}")}

    assert {"data_report.json", "data_report.html"} <= names("gate1")
    assert not any(n.endswith(".parquet") for n in names("gate1"))  # reports, not data
    assert {"evaluation.json", "evaluation.html"} <= names("gate2")
    e2e = tmp_path / "e2e"
    e2e.mkdir()
    (e2e / "e2e.json").write_text(json.dumps({"passed": True, "registry_version": "1"}))
    (e2e / "service.log").write_text("ready\n")
    registry.attach_report("1", "gate3", e2e)  # what `carprice e2e` calls after writing these
    assert names("gate3") == {"e2e.json", "service.log"}


def test_the_challenger_alias_is_dropped_only_from_the_version_promoted(cycle, client, champion):
    name = registry.MODEL_NAME
    assert str(client.get_model_version_by_alias(name, registry.CHALLENGER).version) == "1"
    assert registry.drop_alias_from(registry.CHALLENGER, "2") is False  # names another version
    assert str(client.get_model_version_by_alias(name, registry.CHALLENGER).version) == "1"
    assert registry.drop_alias_from(registry.CHALLENGER, "1") is True
    assert {k: str(v) for k, v in client.get_registered_model(name).aliases.items()} == {
        registry.CHAMPION: "1"
    }
    registry.set_alias(registry.CHALLENGER, "1")  # as it was, for the tests after this one


def test_artifacts_are_recorded_under_the_configured_root(cycle, client):
    root = cycle.artifacts.as_uri()
    version = client.get_model_version(registry.MODEL_NAME, "1")
    assert client.get_run(version.run_id).info.artifact_uri.startswith(root + "/")
    assert client.get_model_version_download_uri(registry.MODEL_NAME, "1").startswith(root + "/")
    for experiment in client.search_experiments():
        assert experiment.artifact_location.startswith(root), experiment.name
    assert any(cycle.artifacts.rglob("MLmodel"))
    assert not (cycle.home / "mlartifacts").exists()  # the configured root, not the default


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}` / `${VAR:-default}` interpolation, nested defaults included."""
    pattern = re.compile(r"\$\{(\w+)(?::-([^${}]*))?\}")
    while (match := pattern.search(text)) is not None:
        value = env.get(match[1]) or (match[2] or "")
        text = text[: match.start()] + value + text[match.end() :]
    return text


@pytest.mark.parametrize("custom_root", [True, False])
def test_the_compose_mlflow_ui_mounts_the_artifact_root_at_the_path_recorded(
    tmp_path, custom_root, monkeypatch
):
    checkout = tmp_path / "checkout"
    env = {"PWD": str(checkout)}
    if custom_root:
        env |= {"CARPRICE_HOME": str(tmp_path / "h"), "CARPRICE_ARTIFACT_ROOT": str(tmp_path / "a")}
    text = _interpolate((PROJECT_ROOT / "deploy" / "docker-compose.yml").read_text(), env)
    service = yaml.safe_load(text)["services"]["mlflow"]
    for name in ("CARPRICE_HOME", "CARPRICE_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
        if name in env:
            monkeypatch.setenv(name, env[name])
    paths = Paths.from_env(root=checkout)
    mounts = [v.split(":") for v in service["volumes"]]
    assert [str(paths.home), str(paths.home), "ro"] in mounts
    assert [str(paths.artifacts), str(paths.artifacts), "ro"] in mounts
    assert f"--backend-store-uri sqlite:///{paths.home}/mlflow.db" in service["command"]


def test_nothing_writes_mlruns_into_the_working_directory(cycle, client):
    assert not (cycle.root / "mlruns").exists()  # the cwd of every CLI step and of the server
    assert (Path.cwd() / "mlruns").exists() == cycle.cwd_had_mlruns
    default = client.get_experiment("0")
    assert default.name == "Default"
    assert default.artifact_location.startswith(cycle.artifacts.as_uri())


def test_a_database_named_by_mlflow_tracking_uri_keeps_artifacts_under_the_root(
    cycle, tmp_path, monkeypatch
):
    """A process that inherits MLFLOW_TRACKING_URI=sqlite:///... writes no mlruns/ either."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    other = Paths(root=tmp_path, home=tmp_path / "home", artifact_root=tmp_path / "root")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    try:
        registry.configure(other)
        with mlflow.start_run() as run:
            mlflow.log_text("logged", "note.txt")
        assert run.info.artifact_uri.startswith(other.artifacts.as_uri() + "/")
        for experiment in MlflowClient().search_experiments():
            assert experiment.artifact_location.startswith(other.artifacts.as_uri()), experiment
        assert (other.artifacts / run.info.run_id / "artifacts" / "note.txt").exists()
        assert not (tmp_path / "mlruns").exists()
    finally:
        monkeypatch.delenv("MLFLOW_TRACKING_URI")
        registry.configure(cycle.paths)
