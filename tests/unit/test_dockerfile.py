"""The Dockerfile's promises, read from the file (the container tier proves them on the image)."""

from __future__ import annotations

import re

from carprice.config import PROJECT_ROOT

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
IGNORE = [
    line.strip()
    for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


def _final_stage() -> str:
    return DOCKERFILE.split("\nFROM ")[-1]


def test_it_is_multi_stage_on_a_base_image_argument():
    assert re.search(r"^ARG BASE_IMAGE=\S+", DOCKERFILE, re.M)
    assert len(re.findall(r"^FROM \$\{BASE_IMAGE\}", DOCKERFILE, re.M)) == 2


def test_the_service_runs_as_a_numeric_non_root_user():
    users = re.findall(r"^USER (\S+)", _final_stage(), re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")


def test_it_checks_health_on_healthz_and_runs_gunicorn():
    stage = _final_stage()
    assert "HEALTHCHECK" in stage and "/healthz" in stage
    assert re.search(r'^CMD \["gunicorn", "-c", "serving/gunicorn.conf.py"', stage, re.M)


def test_it_installs_the_serving_requirements_only_and_carprice_without_dependencies():
    assert "-r /tmp/requirements.txt" in DOCKERFILE
    assert "COPY serving/requirements.txt" in DOCKERFILE
    assert "requirements.txt /tmp/requirements.txt" in DOCKERFILE
    assert "--no-deps" in DOCKERFILE
    assert not re.search(r"pip install[^\n]*(pandas|mlflow|pandera|scikit)", DOCKERFILE)


def test_the_build_context_lets_through_only_code_and_the_bundle():
    assert IGNORE[0] == "*"
    allowed = {line.lstrip("!") for line in IGNORE if line.startswith("!")}
    assert "data/model/package/bundle" in allowed
    assert not any(p.startswith(("data/raw", "data/snapshots", ".venv", "var")) for p in allowed)
    assert re.search(r"^ARG BUNDLE=data/model/package/bundle$", DOCKERFILE, re.M)


def test_no_certificate_or_secret_is_copied_into_the_image():
    assert "ca-certificates.crt" not in DOCKERFILE
    assert "COPY --from=build /opt/tools" not in DOCKERFILE


def _build_stage() -> str:
    return DOCKERFILE.split("\nFROM ")[1]


def test_the_build_stage_compiles_the_tree_scorer_extension():
    stage = _build_stage()
    assert re.search(r"apt-get install -y --no-install-recommends gcc\b", stage)
    assert "python3-dev" in stage  # the headers, where python3 comes from Debian
    assert re.search(r"^COPY pyproject.toml setup.py README.md /tmp/carprice/", stage, re.M)
    assert "import carprice.runtime._treescore" in stage  # the build fails without it
    assert "setup.py" in (PROJECT_ROOT / "scripts/build-image.sh").read_text()
    assert "!setup.py" in IGNORE


def test_the_runtime_stage_installs_no_compiler():
    installs = " ".join(re.findall(r"apt-get install[^\n&;]*", _final_stage()))
    assert installs  # libgomp1 and, on a bare base, python3
    for tool in ("gcc", "g++", "clang", "cc", "build-essential", "python3-dev", "libc6-dev"):
        assert tool not in installs.split(), tool
    assert "COPY --from=build /opt/tools" not in DOCKERFILE  # nor the build's pip and setuptools
