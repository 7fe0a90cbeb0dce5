"""The deploy pointer: read, atomic swap, history."""

from __future__ import annotations

import os

import pytest

from carprice import deploy


def test_it_reads_no_pointer_as_none(tmp_path):
    assert deploy.read_pointer(tmp_path) is None


def test_it_swaps_the_pointer_and_returns_the_previous_bundle(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert deploy.swap_pointer(tmp_path, a) is None
    assert deploy.read_pointer(tmp_path) == a.resolve()
    assert deploy.swap_pointer(tmp_path, b, note="release 2") == a.resolve()
    assert deploy.read_pointer(tmp_path) == b.resolve()
    assert os.path.islink(deploy.pointer_path(tmp_path))
    history = deploy.history(tmp_path)
    assert [h["bundle"] for h in history] == [str(a.resolve()), str(b.resolve())]
    assert history[1]["previous"] == str(a.resolve()) and history[1]["note"] == "release 2"


def test_it_leaves_no_temporary_link_behind(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    deploy.swap_pointer(tmp_path, a)
    deploy.swap_pointer(tmp_path, a)
    leftovers = [p.name for p in deploy.deploy_dir(tmp_path).iterdir()]
    assert sorted(leftovers) == ["current", "history.jsonl"]


def test_it_refuses_a_missing_bundle_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        deploy.swap_pointer(tmp_path, tmp_path / "nope")
    assert deploy.read_pointer(tmp_path) is None


def test_it_resolves_a_relative_link(tmp_path):
    (tmp_path / "bundles" / "x").mkdir(parents=True)
    deploy.deploy_dir(tmp_path).mkdir()
    os.symlink("../bundles/x", deploy.pointer_path(tmp_path))
    assert deploy.read_pointer(tmp_path) == (tmp_path / "bundles" / "x").resolve()


def test_it_keeps_named_pointers_apart_and_clears_one(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    deploy.swap_pointer(tmp_path, a)
    deploy.swap_pointer(tmp_path, b, name=deploy.CHALLENGER)
    assert deploy.read_pointer(tmp_path, deploy.CHALLENGER) == b.resolve()
    deploy.clear_pointer(tmp_path, deploy.CHALLENGER)
    assert deploy.read_pointer(tmp_path, deploy.CHALLENGER) is None
    assert deploy.read_pointer(tmp_path) == a.resolve()
