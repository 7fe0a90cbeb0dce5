"""README's "First estimate" runs as written: every `$ ` command of its console blocks, from
`make serve` (the production container of the container tier's first release) to
`make serve-stop`, run against a fresh CARPRICE_HOME, gives answers of the shape printed under it.

Prices, ratings, ids, images, the model version and the API key differ from run to run: the key
and the id the README's feedback posts name are replaced by this run's, the values under VARYING
keys are compared by type, the Date, Content-Length and X-Model-Version headers by name only, and
in the `[carprice]` lines of `make serve` numbers and hex ids (release, image, container, port,
seconds) are masked. Everything else (statuses, fields, messages) must match the README exactly.
The port is the one thing changed in the commands: `make serve` reads PORT from the environment,
and `8000` in the others becomes that port.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from carprice.config import PROJECT_ROOT
from carprice.release import container, production

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
# what the model and the run decide: compared by type
VARYING = {"prediction_id", "model_version", "price", "price_low", "price_high", "price_rating"}
VARYING |= {"feedback_id", "image_id"}
VARYING_HEADERS = ("Date:", "Content-Length:", "X-Model-Version:")
# in a `[carprice]` progress line: image ids (Docker's with `sha256:`), container ids, model
# versions (`m-` and hex), release numbers, ports and seconds
MASKED = re.compile(r"(?:sha256:)?\b[0-9a-f]{12,}\b|\d+(?:\.\d+)?")


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
        elif want.startswith("[carprice] ") and not want.endswith("this once:"):
            if MASKED.sub("#", want) != MASKED.sub("#", got):
                problems.append(f"{got!r} is not shaped like {want!r}")
        elif want.startswith("cp_"):
            if not re.fullmatch(r"cp_[0-9a-f]{12}_\S+", got):
                problems.append(f"{got!r} is not an API key")
        elif want != got.rstrip("\r"):
            problems.append(f"{got!r} instead of {want!r}")
    return problems


def test_the_quickstart_parses_into_production_started_used_and_stopped():
    commands = [c for c, _ in steps(section("First estimate"))]
    assert commands[0] == "make serve" and commands[-1] == "make serve-stop"
    assert commands[1].startswith("until curl -sf localhost:8000/readyz")
    assert len(commands) == 9
    assert sum("/v1/estimates" in c for c in commands) == 3
    assert sum("listing_price" in c for c in commands) == 1
    assert sum("/v1/feedback" in c for c in commands) == 2
    assert any(c.startswith(".venv/bin/carprice clients add") for c in commands)


def test_a_changed_answer_is_caught():
    printed = '{"status":"accepted","feedback_id":1,"prediction_id":"01a"}'
    assert same_output(printed, '{"status":"accepted","feedback_id":7,"prediction_id":"9ff"}') == []
    assert same_output(printed, '{"status":"queued","feedback_id":7,"prediction_id":"9ff"}')
    assert same_output("HTTP/1.1 422 UNPROCESSABLE ENTITY", "HTTP/1.1 400 BAD REQUEST")
    ready = "[carprice] container 0123456789ab ready in 4.0 s"
    assert same_output(ready, "[carprice] container 9f8e7d6c5b4a ready in 12.5 s") == []
    assert same_output(ready, "[carprice] container 9f8e7d6c5b4a failed in 12.5 s")
    assert same_output(ready, f"{ready}\n9f8e7d6c5b4a39e1")  # a bare id after the friendly line


@pytest.mark.slow
@pytest.mark.container
def test_the_readme_quickstart_runs_as_written(world, tmp_path):
    home = tmp_path / "home"  # fresh: what `make retrain` leaves for `make serve`, nothing else
    production.record_champion(home, production.champion(world.home))
    port = container.free_port()
    env = {**os.environ, "CARPRICE_HOME": str(home), "PORT": str(port)}
    for name in ("CARPRICE_DB_URL", "CARPRICE_BUNDLE", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # a reader's shell, not a make recipe: under `make test` a nested make would announce the
    # directories it enters ("make[1]: Entering directory ...")
    for name in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES"):
        env.pop(name, None)
    # The venv is the one this suite runs in, set up before (by `make test`, or the README's
    # `make retrain`): `make serve` must find it current, never reinstall it from a test.
    stamp = subprocess.run(["make", "-q", ".venv/.installed"], cwd=PROJECT_ROOT, check=False)
    assert stamp.returncode == 0, "the venv is older than requirements.txt: run `make setup`"
    replace: dict[str, str] = {"8000": str(port)}
    problems, transcript = [], []  # the transcript, with the port as printed, to paste from
    try:
        for command, printed in steps(section("First estimate")):
            for old, new in replace.items():
                command = command.replace(old, new)
            run = subprocess.run(
                ["bash", "-c", command],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # as a terminal shows them
                text=True,
                timeout=300,
                check=False,
            )
            actual = run.stdout
            transcript.append(f"$ {command}\n{actual}".replace(str(port), "8000"))
            if run.returncode != 0 or same_output(printed, actual):
                problems.append(f"$ {command}\n(exit {run.returncode})\n{actual}")
                if command.startswith("make serve") and run.returncode != 0:
                    break
                continue
            _learn(printed, actual, replace)
        (tmp_path / "transcript.txt").write_text("\n".join(transcript))
        assert problems == [], "\n\n".join(problems) + "\n\nthis run:\n" + "\n".join(transcript)
        assert production.state(home) is None  # `make serve-stop` stopped it
    finally:
        production.stop(home)


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
