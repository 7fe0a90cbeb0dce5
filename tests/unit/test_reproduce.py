"""Reproduce: which code a rebuild runs, and what counts as identical."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from carprice.config import PROJECT_ROOT
from carprice.release.reproduce import _code


def _head() -> str:
    if not shutil.which("git") or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_dirty_recorded_commit_uses_the_checkout_and_says_so(tmp_path):
    src, sentence = _code("0123abc-dirty", tmp_path)
    assert src == PROJECT_ROOT / "src"
    assert "cannot be checked out" in sentence and "0123abc-dirty" in sentence


def test_a_clean_recorded_commit_is_extracted_from_git(tmp_path, monkeypatch):
    head = _head()
    monkeypatch.setattr("carprice.release.reproduce.git_commit", lambda: "f" * 40)
    src, sentence = _code(head, tmp_path)
    assert src == tmp_path / "src"
    assert (src / "carprice" / "model" / "train.py").is_file()
    assert "git archive" in sentence


def test_an_unknown_commit_falls_back_to_the_checkout(tmp_path):
    src, sentence = _code("unknown", tmp_path)
    assert src == PROJECT_ROOT / "src" and "cannot be checked out" in sentence
