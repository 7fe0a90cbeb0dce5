"""README's "First estimate" runs as written: its serve command and every `$ ` command of its
console blocks, against a fresh CARPRICE_HOME, give answers of the shape printed under them.

Prices, ratings, ids, the model version and the API key differ from run to run: the key and the
id the README's feedback posts name are replaced by this run's, the values under VARYING keys
are compared by type, and the Date, Content-Length and X-Model-Version headers by name only.
Everything else (statuses, fields, messages) must match the README exactly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from carprice.config import PROJECT_ROOT
from carprice.runtime import pointer
from carprice.simulator.demo import free_port, stop, wait_ready

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
# what the model and the run decide: compared by type
VARYING = {"prediction_id", "model_version", "price", "price_low", "price_high", "price_rating"}
VARYING |= {"feedback_id"}
VARYING_HEADERS = ("Date:", "Content-Length:", "X-Model-Version:")
pytestmark = pytest.mark.slow


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)^## ", README, re.S | re.M)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


def steps(text: str) -> list[tuple[str, str]]:
    """(command, printed output) of every `$ ` line (with its `\\` continuations)."""
    out = []
    for block in blocks(text, "console"):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            assert lines[i].startswith("$ "), f"not a command: {lines[i]!r}"
            command = [lines[i][2:]]
            while command[-1].endswith("\\"):
                i += 1
                command.append(lines[i])
            i += 1
            printed = []
            while i < len(lines) and not lines[i].startswith("$ "):
                printed.append(lines[i])
                i += 1
            out.append(("\n".join(command), "\n".join(printed).strip()))
    return out


def shape(value, key: str | None = None):
    """A JSON value with what varies between runs replaced by its type."""
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if key in VARYING:
        return type(value).__name__
    return value


def same_output(printed: str, actual: str) -> list[str]:
    """What differs between the README's output and this run's (empty: the same)."""
    printed_lines, actual_lines = printed.splitlines(), actual.strip().splitlines()
    if len(printed_lines) != len(actual_lines):
        return [f"{len(actual_lines)} lines instead of {len(printed_lines)}:\n{actual}"]
    problems = []
    for want, got in zip(printed_lines, actual_lines, strict=True):
        if want.startswith("{"):
            if shape(json.loads(want)) != shape(json.loads(got)):
                problems.append(f"{got}\n  is not shaped like\n{want}")
        elif want.startswith(VARYING_HEADERS):
            if want.split(":")[0] != got.split(":")[0]:
                problems.append(f"{got!r} instead of {want!r}")
        elif want.startswith("cp_"):
            if not re.fullmatch(r"cp_[0-9a-f]{12}_\S+", got):
                problems.append(f"{got!r} is not an API key")
        elif want != got.rstrip("\r"):
            problems.append(f"{got!r} instead of {want!r}")
    return problems


def test_the_quickstart_parses_into_a_serve_command_and_answered_steps():
    text = section("First estimate")
    assert [b.strip() for b in blocks(text, "bash")] == [
        ".venv/bin/carprice serve --local --port 8000"
    ]
    commands = [c for c, _ in steps(text)]
    assert len(commands) == 7
    assert sum("/v1/estimates" in c for c in commands) == 3
    assert sum("/v1/feedback" in c for c in commands) == 2
    assert any(c.startswith(".venv/bin/carprice clients add") for c in commands)


def test_a_changed_answer_is_caught():
    printed = '{"status":"accepted","feedback_id":1,"prediction_id":"01a"}'
    assert same_output(printed, '{"status":"accepted","feedback_id":7,"prediction_id":"9ff"}') == []
    assert same_output(printed, '{"status":"queued","feedback_id":7,"prediction_id":"9ff"}')
    assert same_output("HTTP/1.1 422 UNPROCESSABLE ENTITY", "HTTP/1.1 400 BAD REQUEST")


def test_the_readme_quickstart_runs_as_written(make_bundle, tmp_path):
    text = section("First estimate")
    home = tmp_path / "home"
    pointer.swap_pointer(home, make_bundle("quickstart"))  # what `make retrain` leaves
    port = free_port()
    env = {**os.environ, "CARPRICE_HOME": str(home), "CARPRICE_DB_URL": ""}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    [serve] = blocks(text, "bash")
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            ["bash", "-c", "exec " + serve.strip().replace("8000", str(port))],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        wait_ready(server, port, tmp_path / "serve.log")
        replace: dict[str, str] = {"8000": str(port)}
        for command, printed in steps(text):
            for old, new in replace.items():
                command = command.replace(old, new)
            run = subprocess.run(
                ["bash", "-c", command],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # as a terminal shows them
                text=True,
                timeout=120,
                check=False,
            )
            actual = run.stdout
            assert run.returncode == 0, f"{command}\n{actual}"
            assert same_output(printed, actual) == [], command
            _learn(printed, actual, replace)
    finally:
        stop(server)


def _learn(printed: str, actual: str, replace: dict[str, str]) -> None:
    """Map the README's prediction ids and API key to this run's, for the later commands."""
    for want, got in zip(printed.splitlines(), actual.strip().splitlines(), strict=True):
        if want.startswith("cp_"):
            replace[want] = got
        elif want.startswith('{"model_version"'):
            for old, new in zip(
                json.loads(want)["estimates"], json.loads(got)["estimates"], strict=True
            ):
                replace[old["prediction_id"]] = new["prediction_id"]
