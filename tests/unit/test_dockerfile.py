"""The Dockerfile's promises, read from the file (the container tier proves them on the image)."""

from __future__ import annotations

import importlib.metadata
import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from carprice.config import PROJECT_ROOT

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
LOCK = (PROJECT_ROOT / "serving" / "requirements.lock").read_text()
BUILD_SCRIPT = PROJECT_ROOT / "scripts" / "build-image.sh"
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


def test_it_installs_the_serving_lock_only_and_carprice_without_dependencies():
    assert "COPY serving/requirements.lock /tmp/requirements.lock" in DOCKERFILE
    installs = _pip_installs()
    assert installs == [
        "--require-hashes --no-deps -r /tmp/requirements.lock",  # every package, by hash
        "--no-deps --target /opt/carprice /tmp/carprice",  # carprice itself, from the context
    ]
    assert re.search(r"/opt/tools/bin/pip --python /opt/venv/bin/python check\b", DOCKERFILE)
    for name in ("pandas", "mlflow", "pandera", "scikit-learn"):
        assert name not in LOCK, name


def _pip_installs() -> list[str]:
    """The arguments of every `pip ... install` in the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.replace("\\\n", " ")
    found = re.findall(r"/bin/pip (?:--python \S+ )?install\s+([^&;\n]*)", text)
    return [" ".join(args.split()) for args in found]


def _pins(text: str) -> dict[str, str]:
    """name -> version of every `name==version` line (extras and markers left out)."""
    found = re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", text, re.M)
    return {canonicalize_name(name): version for name, version in found}


def test_the_base_image_is_pinned_by_its_digest_here_and_in_the_local_build():
    [default] = re.findall(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert re.fullmatch(r"[a-z0-9./:-]+@sha256:[0-9a-f]{64}", default), default
    assert not re.search(r"^FROM (?!\$\{BASE_IMAGE\})", DOCKERFILE, re.M)  # no other base
    script = BUILD_SCRIPT.read_text()
    # the local podman base goes to the build by the digest the engine reports, not by its tag
    assert "image inspect --format '{{.Digest}}'" in script
    assert 'base="$name@$digest"' in script
    assert '--build-arg "BASE_IMAGE=$base"' in script
    assert '--label "org.carprice.base_image=$base"' in script


def test_the_lock_pins_every_package_the_image_needs_with_hashes_at_the_pinned_versions():
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.split("\n", 2)[2].strip())
    assert len(blocks) == len(_pins(LOCK)) > 10
    for block in blocks:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), block.splitlines()[0]
    lock = _pins(LOCK)
    serving = _pins((PROJECT_ROOT / "serving" / "requirements.txt").read_text())
    root = _pins((PROJECT_ROOT / "requirements.txt").read_text())
    for name, version in serving.items():  # what the image asks for, at its pin
        assert lock.get(name) == version == root[name], name
    for name in lock.keys() & root.keys():  # dependencies the root pins too, at the same version
        assert lock[name] == root[name], name
    # the lock is closed: every dependency of every package on Linux (the installed metadata of
    # the same versions) is in it, so --no-deps leaves nothing out
    wanted = [
        Requirement(r) for r in _requirement_lines(PROJECT_ROOT / "serving" / "requirements.txt")
    ]
    seen: set[str] = set()
    while wanted:
        req = wanted.pop()
        name = canonicalize_name(req.name)
        assert name in lock, f"{name} (needed) is not in serving/requirements.lock"
        assert importlib.metadata.version(name) == lock[name], name
        for extra in [*sorted(req.extras), ""]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for line in importlib.metadata.requires(name) or []:
                dep = Requirement(line)  # an extra's own deps carry a marker naming it
                if dep.marker.evaluate({"extra": extra}) if dep.marker else not extra:
                    wanted.append(dep)


def _requirement_lines(path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def test_every_debian_package_the_image_installs_is_pinned_by_version():
    text = DOCKERFILE.replace("\\\n", " ")
    installs = re.findall(r"apt-get install -y --no-install-recommends ([^&;\n]*)", text)
    extras = re.findall(r"extra=(\S+?);", text)
    packages = [p for args in installs for p in args.split() if p != "$extra"] + extras
    assert len(packages) >= 7  # python3, python3-venv, python3-dev, gcc, libc6-dev, libgomp1 ...
    for package in packages:
        name, _, version = package.partition("=")
        match = re.fullmatch(r"\$\{([A-Z0-9_]+)\}", version)
        assert match, f"{package}: not pinned by version"
        # each version is a build argument with a default in the stage that uses it
        assert re.search(rf"^ARG {match[1]}=\S+$", DOCKERFILE, re.M), match[1]


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
