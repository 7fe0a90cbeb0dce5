"""Model files are data: the compiled-tree cache and the deploy pointer under faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from carprice.config import PROJECT_ROOT
from carprice.runtime import pointer, treecode, treepack
from carprice.runtime.bundle import load_bundle, verify_bundle
from carprice.runtime.treecode_source import SOURCE


def test_the_generated_c_takes_nothing_from_a_model_file(bundle_dir):
    """The C source is a constant; the trees reach it as numbers parsed with int()/float()."""
    text = (bundle_dir / "model.txt").read_text()
    evil = text.replace("objective=", 'objective=");system("id");//', 1)
    with pytest.raises(treepack.Unsupported):  # an odd objective is refused, never compiled
        treepack.parse_model(evil)
    packed = treepack.pack([treepack.parse_model(text)], 10)
    for name in ("thresholds", "leaves", "tables", "group_rule"):
        assert getattr(packed, name).dtype.kind in "fiu", name  # numbers only
    source = (PROJECT_ROOT / "src/carprice/runtime/treecode.py").read_text()
    assert "SOURCE" in source and "format(" not in SOURCE and "{" in SOURCE  # no templating
    assert "write_text(SOURCE" in source


def test_a_tampered_cached_library_is_never_loaded(tmp_path, c_compiler):
    cache = tmp_path / "trees"
    lib = treecode.library(cache)
    assert lib is not None and treecode.verified(lib)
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    first = lib.read_bytes()
    lib.write_bytes(first[:-16] + b"\0" * 16)  # a planted or damaged library
    assert not treecode.verified(lib)
    with pytest.raises(treecode.UnsafeCache):
        treecode.CompiledTrees(lib, None)
    again = treecode.library(cache)  # rebuilt from the source, recorded anew
    assert again == lib and treecode.verified(lib) and lib.read_bytes() == first


def test_a_library_without_its_recorded_digest_is_rebuilt(tmp_path, c_compiler):
    cache = tmp_path / "trees"
    lib = treecode.library(cache)
    lib.with_name(lib.name + ".sha256").unlink()
    lib.write_bytes(b"not a library")
    assert treecode.library(cache) == lib and treecode.verified(lib)


def test_a_cache_open_to_others_is_closed_and_emptied(tmp_path, c_compiler):
    cache = tmp_path / "trees"
    lib = treecode.library(cache)
    os.chmod(cache, 0o777)
    planted = cache / "treecode-planted.so"
    planted.write_bytes(b"x")
    assert treecode.library(cache) == lib
    assert oct(cache.stat().st_mode & 0o777) == "0o700" and not planted.exists()


def test_a_cache_owned_by_someone_else_is_refused(tmp_path, c_compiler):
    if os.getuid() != 0:
        pytest.skip("needs root to hand the directory to another user")
    cache = tmp_path / "trees"
    cache.mkdir(mode=0o700)
    os.chown(cache, 65534, 65534)
    assert treecode.library(cache) is None  # LightGBM scores instead


CRASH = r"""
import os, signal, sys
from pathlib import Path
from carprice.runtime import bundle
from carprice.runtime import pointer
point = sys.argv[1]; source = Path(sys.argv[2]); target = Path(sys.argv[3]); home = sys.argv[4]
loaded = bundle.load_bundle(source)
real = bundle._dump
def dump(path, data):
    if point == "write" and path.name == "metadata.json":
        os.kill(os.getpid(), signal.SIGKILL)  # half the files written
    real(path, data)
bundle._dump = dump
boosters = {"model.txt": loaded.point, "model_q_low.txt": loaded.low,
            "model_q_high.txt": loaded.high}
bundle.write_bundle(target, boosters=boosters, spec=loaded.spec,
                    supported=[tuple(k.split("|", 1)) for k in loaded.supported],
                    interval=loaded.interval, metadata={"model_version": "crash-2"})
if point == "swap":
    real_replace = os.replace
    def replace(a, b):
        os.kill(os.getpid(), signal.SIGKILL)  # the temporary link made, not yet renamed
    os.replace = replace
pointer.swap_pointer(Path(home), target)
"""


@pytest.mark.parametrize("point", ["write", "swap"])
def test_a_crash_between_writing_a_bundle_and_swapping_leaves_current_verified(
    make_bundle, tmp_path, point
):
    home = tmp_path / "home"
    old = make_bundle("crash-1")
    pointer.swap_pointer(home, old)
    target = tmp_path / "new-bundle"
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, point, str(old), str(target), str(home)],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    current = pointer.read_pointer(home)
    assert current == old.resolve()
    verify_bundle(current)
    assert load_bundle(current).version == "crash-1"
    if point == "write":
        assert not target.exists()  # only the .partial sibling, never a half bundle by name
        assert target.with_name(target.name + ".partial").exists()
    else:
        verify_bundle(target)  # complete, just not promoted
    # the next attempt goes through, stale temporary link or partial directory notwithstanding
    pointer.swap_pointer(home, make_bundle("crash-3"))
    assert load_bundle(pointer.read_pointer(home)).version == "crash-3"
    assert [h["bundle"] for h in pointer.history(home)][-1].endswith("crash-3")
    assert json.loads((pointer.deploy_dir(home) / "history.jsonl").read_text().splitlines()[-1])
