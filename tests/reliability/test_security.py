"""Security properties read from the code, the pins and the running app.

The container's non-root user is checked statically by
tests/unit/test_dockerfile.py::test_the_service_runs_as_a_numeric_non_root_user (not repeated).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re

import pytest

from carprice.config import PROJECT_ROOT
from tests.serving.conftest import golf

SCANNED = ("src", "serving")
UNSAFE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "joblib",
    "dill",
    "cloudpickle",
    "shelve",
    "marshal",
}
UNSAFE_CALLS = {"read_pickle", "unsafe_load", "full_load", "load_model", "loads_pickle"}
# Minimum versions: request smuggling (gunicorn < 23: CVE-2024-1135, CVE-2024-6827), model
# deserialization RCE (lightgbm < 4.6.0: CVE-2024-43598), multipart DoS (werkzeug < 3.0.6:
# CVE-2024-49767), session signing key fallback (flask < 3.1.1: CVE-2025-47278).
MINIMUM = {"gunicorn": (23, 0), "lightgbm": (4, 6), "werkzeug": (3, 0, 6), "flask": (3, 1, 1)}


def _violations(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in UNSAFE_MODULES:
                found.append(node.module)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in UNSAFE_CALLS:
                found.append(f"{name}()")
            pickled = [k for k in node.keywords if k.arg == "allow_pickle"]
            if any(
                not (isinstance(k.value, ast.Constant) and k.value.value is False) for k in pickled
            ):
                found.append("allow_pickle=")
            if name == "load" and isinstance(func, ast.Attribute):
                owner = getattr(func.value, "id", "")
                if owner == "yaml" and not any(k.arg == "Loader" for k in node.keywords):
                    found.append("yaml.load()")
    return found


def test_no_pickle_or_joblib_load_anywhere_in_src_or_serving():
    offenders = {}
    files = [p for d in SCANNED for p in (PROJECT_ROOT / d).rglob("*.py")]
    assert len(files) > 50  # the scan really reads the code
    for path in files:
        found = _violations(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            offenders[str(path.relative_to(PROJECT_ROOT))] = found
    assert offenders == {}


@pytest.mark.parametrize(
    "code",
    [
        "import pickle\npickle.loads(b'')",
        "from joblib import load",
        "import pandas as pd\npd.read_pickle('x')",
        "import numpy as np\nnp.load('x', allow_pickle=True)",
        "import yaml\nyaml.load(open('x'))",
        "import mlflow\nmlflow.pyfunc.load_model('runs:/x')",
    ],
)
def test_the_scan_catches_each_kind_of_unsafe_load(code):
    assert _violations(ast.parse(code))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


@pytest.mark.parametrize("requirements", ["requirements.txt", "serving/requirements.txt"])
def test_pinned_versions_are_free_of_the_known_smuggling_and_deserialization_advisories(
    requirements,
):
    pins = dict(
        re.findall(
            r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)",
            (PROJECT_ROOT / requirements).read_text(),
            re.M,
        )
    )
    pins = {k.lower(): v for k, v in pins.items()}
    for package, floor in MINIMUM.items():
        pinned = pins.get(package)
        installed = importlib.metadata.version(package)
        if pinned is not None:
            assert _version(pinned) >= floor, (requirements, package, pinned)
        assert _version(installed) >= floor, (package, installed)


def test_request_limits_are_set(client):
    from serving.app import DEFAULTS

    conf = (PROJECT_ROOT / "serving" / "gunicorn.conf.py").read_text()
    for setting in ("limit_request_line", "limit_request_fields", "limit_request_field_size"):
        assert re.search(rf"^{setting} = \d+", conf, re.M), setting
    assert DEFAULTS["MAX_CONTENT_LENGTH"] == 1 << 20
    assert (
        client.post(
            "/v1/estimates", data=b"x" * ((1 << 20) + 1), content_type="application/json"
        ).status_code
        == 413
    )


def test_an_unexpected_error_answers_500_without_a_stack_trace(app, client, monkeypatch):
    model = app.extensions["carprice"].champion

    def explode(listings):
        raise RuntimeError("secret internals /srv/carprice/bundle at line 42")

    monkeypatch.setattr(model, "estimate", explode)
    response = client.post("/v1/estimates", json={"listings": [golf()]})
    text = response.get_data(as_text=True)
    assert response.status_code == 500 and response.mimetype == "application/problem+json"
    assert "Traceback" not in text and "secret" not in text and "RuntimeError" not in text
