"""The engine's word on a container: the image it runs from, and the image's HEALTHCHECK run once
on Docker (which has no `healthcheck run`), against a stand-in `docker` command on PATH."""

from __future__ import annotations

import json
import os
import stat

import pytest

from carprice.release import container

HEX = "ab" * 32


def _fake_docker(folder, healthcheck, exit_code: int = 0):
    """A `docker` that answers inspect with `healthcheck` and logs every exec it is asked."""
    script = folder / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {folder}/calls\n'
        'case "$1" in\n'
        f"  inspect) echo '{json.dumps(healthcheck)}' ;;\n"
        f"  exec) exit {exit_code} ;;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder / "calls"


@pytest.fixture
def docker_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def test_docker_runs_the_healthcheck_command_inside_the_container(docker_path):
    calls = _fake_docker(docker_path, {"Test": ["CMD", "python3", "-c", "print(1)"]})
    assert container.Engine("docker").healthcheck("c1") is True
    assert calls.read_text().splitlines()[-1] == "exec c1 python3 -c print(1)"


def test_docker_runs_a_shell_healthcheck_with_sh(docker_path):
    calls = _fake_docker(docker_path, {"Test": ["CMD-SHELL", "curl -f localhost"]})
    assert container.Engine("docker").healthcheck("c1") is True
    assert calls.read_text().splitlines()[-1] == "exec c1 /bin/sh -c curl -f localhost"


def test_docker_reports_a_failing_healthcheck(docker_path):
    _fake_docker(docker_path, {"Test": ["CMD", "false"]}, exit_code=1)
    assert container.Engine("docker").healthcheck("c1") is False


@pytest.mark.parametrize("healthcheck", [None, {"Test": ["NONE"]}, {}])
def test_an_image_without_a_healthcheck_fails_it_on_docker(docker_path, healthcheck):
    calls = _fake_docker(docker_path, healthcheck)
    assert container.Engine("docker").healthcheck("c1") is False
    assert "exec" not in calls.read_text()


def test_image_ids_compare_across_the_engines_spellings():
    assert container.same_image(f"sha256:{HEX}", HEX)
    assert container.same_image(HEX, HEX)
    assert not container.same_image(HEX, "cd" * 32)
    assert not container.same_image("", "") and not container.same_image(None, HEX)
