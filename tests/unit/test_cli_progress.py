"""Progress of long stages: a bar on a terminal, plain lines anywhere else (make, CI, logs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import lightgbm as lgb
import numpy as np
import pytest

from carprice.cli.progress import Stage
from carprice.config import PROJECT_ROOT
from carprice.model.train import round_reporter
from carprice.release import container

SIMULATE = ["simulate", "--weeks", "3", "--start", "2026-03-02", "--listings-per-week", "40"]


def _plain(text: str) -> None:
    assert "\r" not in text and "\x1b" not in text, repr(text[:300])


def test_simulate_prints_one_plain_line_per_week_when_stderr_is_not_a_terminal(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "carprice.cli", *SIMULATE, "--out", "raw"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    _plain(proc.stderr)
    weeks = [line for line in proc.stderr.splitlines() if line.startswith("[carprice] simulate")]
    assert [w.split(":")[0] for w in weeks] == [f"[carprice] simulate {i}/3" for i in (1, 2, 3)]
    assert "listings-2026-W10.csv" in weeks[0]


@pytest.mark.skipif(not shutil.which("script"), reason="needs script(1) for a pseudo-terminal")
def test_simulate_draws_a_bar_on_a_terminal(tmp_path):
    command = " ".join([sys.executable, "-m", "carprice.cli", *SIMULATE, "--out", "raw"])
    proc = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert proc.returncode == 0, proc.stdout
    screen = proc.stdout.decode()  # bytes: text mode would turn the bar's '\r' into '\n'
    assert "\rsimulate: 100%" in screen and "3/3" in screen
    assert "[carprice] simulate 1/3" not in screen


def test_a_long_stage_prints_a_line_per_tenth_and_per_new_note(capsys):
    with Stage("training", bar=False) as rounds:
        for booster, total in (("point", 200), ("q=0.10", 50)):
            for done in range(1, total + 1):
                rounds(done, total, booster)
    lines = capsys.readouterr().err.splitlines()
    _plain("\n".join(lines))
    assert lines[0] == "[carprice] training 1/200: point"
    assert "[carprice] training 200/200: point" in lines
    assert "[carprice] training 50/50: q=0.10" in lines
    assert 20 <= len(lines) <= 24  # about ten per booster, not 250


def test_training_reports_every_boosting_round_of_lightgbm():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 3)), rng.normal(size=200)
    seen: list[tuple[int, int | None, str]] = []
    data = lgb.Dataset(x, y, params={"verbose": -1})
    lgb.train(
        {"verbose": -1, "num_threads": 1},
        data,
        num_boost_round=7,
        callbacks=[round_reporter(lambda *a: seen.append(a), "point")],
    )
    assert seen == [(i, 7, "point") for i in range(1, 8)]


def test_the_image_build_streams_its_output_lines_with_the_step_numbers(tmp_path, monkeypatch):
    script = tmp_path / "build.sh"
    script.write_text(
        "#!/bin/sh\n"
        "echo '[build-image] podman: building' >&2\n"
        "echo '[1/2] STEP 1/3: FROM base' >&2\n"
        "echo 'Collecting flask' >&2\n"
        "echo '[2/2] STEP 3/3: CMD gunicorn' >&2\n"
        "echo sha256:abc\n"
    )
    script.chmod(0o755)
    monkeypatch.setattr(container, "BUILD_SCRIPT", script)
    seen = []
    with open(tmp_path / "build.log", "w", encoding="utf-8") as log:
        image = container.build(tmp_path, "carprice:t", log=log, steps=lambda *a: seen.append(a))
    assert image == "sha256:abc"
    assert [(done, total) for done, total, _ in seen] == [(0, None), (1, 3), (1, 3), (3, 3)]
    assert seen[2][2] == "Collecting flask"
    assert (tmp_path / "build.log").read_text().count("\n") == 4


def test_a_failed_image_build_raises_after_streaming(tmp_path, monkeypatch):
    script = tmp_path / "build.sh"
    script.write_text("#!/bin/sh\necho 'Error: no space left' >&2\nexit 3\n")
    script.chmod(0o755)
    monkeypatch.setattr(container, "BUILD_SCRIPT", script)
    seen = []
    with pytest.raises(container.EngineError, match="exit 3"):
        container.build(tmp_path, "carprice:t", steps=lambda *a: seen.append(a))
    assert seen == [(0, None, "Error: no space left")]


def test_make_help_prints_no_escape_codes_into_a_pipe():
    proc = subprocess.run(
        "make --no-print-directory help | cat",
        shell=True,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "retrain" in proc.stdout and "\x1b" not in proc.stdout


@pytest.mark.parametrize("terminal", [False, True])
def test_mlflow_draws_no_download_bar_off_a_terminal(terminal, tmp_path, monkeypatch, capsys):
    import mlflow.artifacts

    from carprice.cli import main, progress

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "")
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")  # restored after the test
    monkeypatch.setattr(progress, "interactive", lambda: terminal)
    with pytest.raises(SystemExit):
        main.main(["--version"])  # the entry point's set-up, then argparse exits
    source = tmp_path / "artifacts"
    source.mkdir()
    for i in range(3):
        (source / f"part-{i}.txt").write_text("x" * 100)
    capsys.readouterr()
    mlflow.artifacts.download_artifacts(artifact_uri=str(source), dst_path=str(tmp_path / "out"))
    err = capsys.readouterr().err
    if terminal:
        assert "\r" in err  # MLflow's own bar, left to the terminal
    else:
        _plain(err)
