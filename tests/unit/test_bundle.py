"""Bundles are verified before they serve: tampering, truncation and mismatches are refused."""

from __future__ import annotations

import json
import shutil

import pytest

from carprice.runtime.bundle import BundleError, load_bundle, verify_bundle, write_bundle


@pytest.fixture
def bundle(small_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(small_bundle, copy)
    return copy


def _rehash(path):
    """Update checksums.json so that only the content check below it can catch the change."""
    import hashlib

    sums = json.loads((path / "checksums.json").read_text())
    for name in sums:
        sums[name] = hashlib.sha256((path / name).read_bytes()).hexdigest()
    (path / "checksums.json").write_text(json.dumps(sums))


def test_a_complete_bundle_loads(bundle):
    loaded = load_bundle(bundle)
    assert loaded.version == "m-test-small"
    assert loaded.point.num_feature() == len(loaded.spec.features)
    assert loaded.supported


def test_a_tampered_file_is_refused(bundle):
    meta = json.loads((bundle / "metadata.json").read_text())
    meta["model_version"] = "m-evil"
    (bundle / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="metadata.json does not match its checksum"):
        load_bundle(bundle)


def test_a_missing_file_is_refused(bundle):
    (bundle / "model_q_high.txt").unlink()
    with pytest.raises(BundleError, match="model_q_high.txt is missing"):
        verify_bundle(bundle)


def test_a_truncated_model_is_refused_even_with_matching_checksums(bundle):
    text = (bundle / "model.txt").read_text()
    (bundle / "model.txt").write_text(text[: len(text) // 3])
    _rehash(bundle)
    with pytest.raises(BundleError, match="cannot load"):
        load_bundle(bundle)


def test_a_feature_list_mismatch_is_refused(bundle):
    spec = json.loads((bundle / "feature_spec.json").read_text())
    spec["features"] = spec["features"][:-1]
    (bundle / "feature_spec.json").write_text(json.dumps(spec))
    _rehash(bundle)
    with pytest.raises(BundleError, match="does not match"):
        load_bundle(bundle)


def test_a_bundle_is_never_overwritten(small_bundle, small_model):
    model, _ = small_model
    with pytest.raises(FileExistsError):
        write_bundle(
            small_bundle,
            boosters=model.boosters,
            spec=model.spec,
            supported=[],
            interval=model.interval,
            metadata={"model_version": "x"},
        )
