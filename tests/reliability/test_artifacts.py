"""Model files are data: the tree scorer's inputs and the deploy pointer under faults."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from carprice.config import PROJECT_ROOT
from carprice.runtime import pointer, treepack
from carprice.runtime.bundle import load_bundle, verify_bundle


def test_a_model_file_reaches_the_tree_scorer_only_as_numbers(bundle_dir):
    """The scorer is a C extension built at install time: nothing is compiled or loaded from a
    bundle at run time, and the trees reach it as numbers parsed with int()/float()."""
    text = (bundle_dir / "model.txt").read_text()
    evil = text.replace("objective=", 'objective=");system("id");//', 1)
    with pytest.raises(treepack.Unsupported):  # an odd objective is refused
        treepack.parse_model(evil)
    packed = treepack.pack([treepack.parse_model(text)], 10)
    for name in ("thresholds", "leaves", "tables", "group_rule"):
        assert getattr(packed, name).dtype.kind in "fiu", name  # numbers only
    runtime = PROJECT_ROOT / "src/carprice/runtime"
    for module in runtime.glob("tree*.py"):
        source = module.read_text()
        assert "subprocess" not in source and "ctypes" not in source, module.name


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
