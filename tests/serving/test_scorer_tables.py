"""Tree-scorer tables that point outside themselves are refused, and so is the bundle."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import time

import numpy as np
import pytest

from carprice.runtime import pointer, treecode, treepack
from carprice.runtime.bundle import BundleError, load_bundle
from carprice.runtime.home import file_sha256
from carprice.runtime.predictor import Predictor
from serving.app import create_app
from tests.serving.conftest import golf


@pytest.fixture(scope="module")
def packed(bundle_dir) -> treepack.Packed:
    bundle = load_bundle(bundle_dir)
    models = [treepack.parse_model(b.model_to_string()) for b in (bundle.point, bundle.low)]
    return treepack.pack(models, len(bundle.spec.features))


def _set(array: np.ndarray, index: int, value) -> np.ndarray:
    out = array.copy()
    out[index] = value
    return out


def _last_leaf_cleared(p: treepack.Packed) -> dict:
    tables = p.tables.copy()
    leaves = np.diff([*p.leaf_base, len(p.leaves)])
    tables[p.group_table[0]] &= ~(np.uint64(1) << np.uint64(leaves[0] - 1))  # row 0, tree 0
    return {"tables": tables}


TAMPERED = {
    "feature index": (
        lambda p: {"group_feature": _set(p.group_feature, 0, p.n_features)},
        r"group 0: feature index 10 outside \[0, 10\)",
    ),
    "negative feature": (
        lambda p: {"group_feature": _set(p.group_feature, 1, -1)},
        r"group 1: feature index -1 outside",
    ),
    "threshold slice": (
        lambda p: {"group_thr": _set(p.group_thr, _numeric(p), len(p.thresholds))},
        r"thresholds \[\d+, \d+\) outside thresholds\[0:\d+\]",
    ),
    "table rows": (
        lambda p: {"group_rows": _set(p.group_rows, len(p.group_rows) - 1, 10**6)},
        r"outside",
    ),
    "table offset": (
        lambda p: {"group_table": _set(p.group_table, 0, len(p.tables))},
        r"group 0: table rows \[\d+, \d+\) outside tables\[0:\d+\]",
    ),
    "leaf base": (
        lambda p: {"leaf_base": _set(p.leaf_base, len(p.leaf_base) - 1, len(p.leaves) + 5)},
        r"tree \d+: leaves \[\d+, \d+\) are not 1 to 64 leaves inside leaves\[0:\d+\]",
    ),
    "booster end": (
        lambda p: {"booster_end": _set(p.booster_end, -1, p.booster_end[-1] - 1)},
        r"booster_end ends at \d+, not at the tree count \d+",
    ),
    "booster order": (
        lambda p: {"booster_end": _set(p.booster_end, 0, p.booster_end[-1] + 1)},
        r"booster_end\[0\] = \d+: not in",
    ),
    "zero reachable leaves": (_last_leaf_cleared, r"tree 0: the tree's last leaf is masked out"),
    "dtype": (
        lambda p: {"group_feature": p.group_feature.astype(np.int64)},
        r"group_feature: expected a 1-d array of i32",
    ),
    "contiguity": (
        lambda p: {"leaves": np.repeat(p.leaves, 2)[::2]},
        r"leaves: not a C-contiguous array",
    ),
    "unknown rule": (lambda p: {"group_rule": _set(p.group_rule, 0, 9)}, r"unknown rule 9"),
}


def _numeric(p: treepack.Packed) -> int:
    return int(np.flatnonzero(p.group_rule != treepack.CATEGORY)[0])


@pytest.mark.parametrize("case", TAMPERED, ids=list(TAMPERED))
def test_tables_pointing_outside_are_refused_naming_what(packed, case, tree_extension):
    change, message = TAMPERED[case]
    bad = dataclasses.replace(packed, **change(packed))
    with pytest.raises(treecode.TablesRefused, match=message) as refused:
        treecode.scorer(bad)
    assert str(refused.value).startswith("tree scorer tables refused: ")


def test_untampered_tables_are_accepted(packed, tree_extension):
    scorer = treecode.scorer(dataclasses.replace(packed))
    assert (scorer.n_features, scorer.n_boosters) == (10, 2)


def _bad_tables_bundle(source, target):
    """Copy a bundle and point one split of model_q_high.txt at feature 10 (of 0..9): LightGBM
    still loads it and the checksums are recomputed, so only the scorer's checks can see it."""
    shutil.copytree(source, target)
    model = target / "model_q_high.txt"
    text = model.read_text()
    head, tree = text.split("\nTree=0\n", 1)
    line = re.search(r"^split_feature=(\d+)", tree, re.M)
    tree = tree[: line.start(1)] + "10" + tree[line.end(1) :]
    size = re.search(r"^tree_sizes=(\d+)", head, re.M)  # LightGBM reads trees by byte count
    grown = int(size.group(1)) + 2 - len(line.group(1))
    head = head[: size.start(1)] + str(grown) + head[size.end(1) :]
    model.write_text(head + "\nTree=0\n" + tree)
    checksums = json.loads((target / "checksums.json").read_text())
    checksums["model_q_high.txt"] = file_sha256(model)
    (target / "checksums.json").write_text(json.dumps(checksums))
    return target


@pytest.fixture
def bad_tables(make_bundle, tmp_path):
    return _bad_tables_bundle(make_bundle("tables-bad"), tmp_path / "bad-tables")


def test_a_bundle_with_tables_out_of_range_is_refused(bad_tables, tree_extension):
    bundle = load_bundle(bad_tables)  # a model LightGBM loads ...
    with pytest.raises(BundleError, match=r"tables refused: group \d+: feature index 10 outside"):
        Predictor(bundle, compiled=True)  # ... that must not serve
    assert not Predictor(bundle).compiled  # the offline path is unchanged


def test_the_service_refuses_it_and_readiness_says_why(bad_tables, home, tree_extension):
    app = create_app(
        {"BUNDLE": bad_tables, "CARPRICE_HOME": home, "DB_URL": f"sqlite:///{home / 'c.db'}"}
    )
    try:
        client = app.test_client()
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "feature index 10 outside [0, 10)" in ready.get_json()["detail"]
        assert client.post("/v1/estimates", json={"listings": [golf()]}).status_code == 503
    finally:
        app.extensions["carprice"].store.dispose()


@pytest.mark.slow
def test_reloading_a_bundle_with_bad_tables_keeps_the_model_serving(
    make_bundle, tmp_path, tree_extension
):
    from tests.serving.test_gunicorn import Server

    home = tmp_path / "home"
    pointer.swap_pointer(home, make_bundle("tables-good"))
    server = Server(home, tmp_path / "gunicorn.log")
    try:
        server.wait_ready()
        pointer.swap_pointer(home, _bad_tables_bundle(make_bundle("tables-bad"), home / "bad"))
        os.kill(server.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while "refused on reload" not in server.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "feature index 10 outside [0, 10)" in server.log.read_text()
        time.sleep(1)
        server.wait_ready()
        status, body = server.call("POST", "/v1/estimates", {"listings": [golf()]})
        assert status == 200 and body["model_version"] == "tables-good"
    finally:
        server.stop()
