"""The evaluation page: small segments are marked, bands read in numeric order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from carprice.model.evaluate import Evaluation, segment_table
from carprice.model.report import ordered_segments, render
from tests.conftest import listing


def small_evaluation() -> Evaluation:
    """Five Gasoline Golfs priced across all price bands, and one Ethanol car."""
    prices = [3_000, 7_000, 15_000, 30_000, 60_000, 12_000]
    rows = [listing(price=p) for p in prices[:5]] + [listing(fuel="Ethanol", price=prices[5])]
    test = pd.DataFrame(rows)
    pred = np.array(prices, dtype=float) * 1.05
    segments = segment_table(test, pred, ref_year=2021)
    scored = test[["make", "model", "price"]].assign(
        ok=True, pred=pred, low=pred * 0.9, high=pred * 1.1
    )
    return Evaluation(
        metrics={"mape": 0.05},
        baseline={"mape": 0.2},
        champion=None,
        segments=segments,
        per_model=pd.DataFrame({"make": ["Volkswagen"], "model": ["Golf"], "mape": [0.05]}),
        priced_share=1.0,
        scored=scored,
    )


def test_price_bands_sort_by_their_lower_bound_not_as_text():
    seg = ordered_segments(small_evaluation().segments, min_rows=2)
    bands = seg.loc[seg["segment"] == "price_band", "value"].tolist()
    assert [b.split(",")[0] for b in bands] == [
        "[0.0",
        "[5000.0",
        "[10000.0",
        "[20000.0",
        "[40000.0",
    ]
    # the text order would put 10000 before 5000
    assert sorted(bands) != bands


def test_segments_below_min_segment_rows_are_marked_not_judged():
    seg = ordered_segments(small_evaluation().segments, min_rows=2).set_index(["segment", "value"])
    assert not seg.loc[("fuel", "Ethanol"), "judged"]
    assert seg.loc[("fuel", "Gasoline"), "judged"]


def test_the_page_plots_only_judged_segments_and_names_the_small_ones():
    evaluation = small_evaluation()
    report = {
        "model_version": "m1",
        "registry_version": 1,
        "passed": True,
        "reasons": [],
        "checks": [],
        "metrics": evaluation.metrics,
        "priced_share": 1.0,
        "baseline": evaluation.baseline,
        "champion": None,
        "thresholds": {"min_segment_rows": 2},
    }
    page = render(report, evaluation)
    segments = page.split("<h2>Segments")[1].split("<h2>")[0]
    assert "not judged, too small: fuel=Ethanol (1 row)" in segments
    assert "fuel=Gasoline" not in segments.split("not judged")[1].split("</p>")[0]
    # one plot (the judged segments) in the section; with no judged segment, none
    assert segments.count("<img") == 1
    report["thresholds"]["min_segment_rows"] = 100
    segments = render(report, evaluation).split("<h2>Segments")[1].split("<h2>")[0]
    assert segments.count("<img") == 0
    band_cells = [c for c in segments.split("<td>") if c.startswith("[")]
    assert [c.split(",")[0] for c in band_cells] == [
        "[0.0",
        "[5000.0",
        "[10000.0",
        "[20000.0",
        "[40000.0",
    ]
