"""The deploy pointer: read, atomic swap, history."""

from __future__ import annotations

import os

import pytest

from carprice.runtime import pointer


def test_it_reads_no_pointer_as_none(tmp_path):
    assert pointer.read_pointer(tmp_path) is None


def test_it_swaps_the_pointer_and_returns_the_previous_bundle(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert pointer.swap_pointer(tmp_path, a) is None
    assert pointer.read_pointer(tmp_path) == a.resolve()
    assert pointer.swap_pointer(tmp_path, b, note="release 2") == a.resolve()
    assert pointer.read_pointer(tmp_path) == b.resolve()
    assert os.path.islink(pointer.pointer_path(tmp_path))
    history = pointer.history(tmp_path)
    assert [h["bundle"] for h in history] == [str(a.resolve()), str(b.resolve())]
    assert history[1]["previous"] == str(a.resolve()) and history[1]["note"] == "release 2"


def test_it_leaves_no_temporary_link_behind(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    pointer.swap_pointer(tmp_path, a)
    pointer.swap_pointer(tmp_path, a)
    leftovers = [p.name for p in pointer.deploy_dir(tmp_path).iterdir()]
    assert sorted(leftovers) == ["current", "history.jsonl"]


def test_it_refuses_a_missing_bundle_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        pointer.swap_pointer(tmp_path, tmp_path / "nope")
    assert pointer.read_pointer(tmp_path) is None


def test_it_resolves_a_relative_link(tmp_path):
    (tmp_path / "bundles" / "x").mkdir(parents=True)
    pointer.deploy_dir(tmp_path).mkdir()
    os.symlink("../bundles/x", pointer.pointer_path(tmp_path))
    assert pointer.read_pointer(tmp_path) == (tmp_path / "bundles" / "x").resolve()


def test_it_keeps_named_pointers_apart(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    pointer.swap_pointer(tmp_path, a)
    pointer.swap_pointer(tmp_path, b, name=pointer.CHALLENGER)
    assert pointer.read_pointer(tmp_path, pointer.CHALLENGER) == b.resolve()
    assert pointer.read_pointer(tmp_path) == a.resolve()
