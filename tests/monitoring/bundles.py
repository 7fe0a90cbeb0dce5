"""Bundles for experiments: a copy of a trained bundle under a new version, optionally shifted."""

from __future__ import annotations

import math
import re
from pathlib import Path

import lightgbm as lgb

from carprice.runtime.bundle import BOOSTERS, load_bundle, write_bundle
from carprice.runtime.listing import KEY_SEPARATOR

LEAVES = re.compile(r"^leaf_value=(.*)$", re.MULTILINE)


def shifted_booster(booster: lgb.Booster, log_shift: float) -> lgb.Booster:
    """Return a copy of `booster` whose every prediction is `log_shift` higher.

    Every row falls into exactly one leaf of the first tree, so adding the shift to all of that
    tree's leaves moves every prediction by exactly the shift.
    """
    text = booster.model_to_string()
    first = LEAVES.search(text)
    leaves = " ".join(repr(float(v) + log_shift) for v in first.group(1).split())
    text = text[: first.start(1)] + leaves + text[first.end(1) :]
    # tree_sizes (byte offsets) no longer match; without the line LightGBM parses sequentially
    text = re.sub(r"^tree_sizes=.*\n", "", text, flags=re.MULTILINE)
    return lgb.Booster(model_str=text)


def copy_bundle(source: Path, out: Path, version: str, factor: float = 1.0) -> Path:
    """Write the bundle at `source` again as `version`, its prices (and interval) x `factor`."""
    bundle = load_bundle(Path(source))
    shift = math.log(factor)
    boosters = {
        name: shifted_booster(booster, shift) if factor != 1.0 else booster
        for name, booster in zip(BOOSTERS, (bundle.point, bundle.low, bundle.high), strict=True)
    }
    supported = [tuple(key.split(KEY_SEPARATOR, 1)) for key in bundle.supported]
    return write_bundle(
        Path(out),
        boosters=boosters,
        spec=bundle.spec,
        supported=supported,
        interval=bundle.interval,
        metadata={**bundle.metadata, "model_version": version},
    )
