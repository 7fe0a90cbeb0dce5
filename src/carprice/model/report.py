"""Gate 2 report: evaluation.json for machines, evaluation.html with plots for people."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from carprice import htmlreport as hr
from carprice.data.gate import GateResult
from carprice.model.evaluate import Evaluation


def _clean(value):
    """Make a value JSON-safe (NaN becomes null)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def to_json(evaluation: Evaluation, gate: GateResult, record: dict, thresholds: dict) -> dict:
    return _clean(
        {
            "model_version": record["model_version"],
            "registry_version": record["registry_version"],
            "passed": gate.passed,
            "reasons": gate.reasons,
            "checks": gate.checks,
            "metrics": evaluation.metrics,
            "priced_share": evaluation.priced_share,
            "baseline": evaluation.baseline,
            "champion": evaluation.champion,
            "segments": evaluation.segments.to_dict(orient="records"),
            "per_model": evaluation.per_model.to_dict(orient="records"),
            "thresholds": thresholds,
        }
    )


def _scatter(scored) -> str:
    ok = scored[scored["ok"]]
    fig, ax = hr.new_figure(5, 5)
    ax.scatter(ok["price"], ok["pred"], s=3, alpha=0.3, color="#3f6fb5")
    lim = [ok["price"].min(), ok["price"].max()]
    ax.plot(lim, lim, color="#b3261e", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("listed price (EUR)")
    ax.set_ylabel("estimate (EUR)")
    ax.set_title("estimate vs listed price (held out)")
    return hr.figure(fig)


def _coverage(scored) -> str:
    ok = scored[scored["ok"]].copy()
    ok["band"] = np.digitize(ok["pred"], [5_000, 10_000, 20_000, 40_000])
    inside = (ok["price"] >= ok["low"]) & (ok["price"] <= ok["high"])
    by_band = inside.groupby(ok["band"]).mean()
    labels = ["<5k", "5-10k", "10-20k", "20-40k", "40k+"]
    return hr.barh(
        [labels[i] for i in by_band.index],
        by_band.tolist(),
        "interval coverage by estimated price",
        "share of prices inside",
    )


BANDED = ("age_band", "price_band")  # segments whose values are ranges, ordered by lower bound


def _lower_bound(value) -> float:
    """Return the first number in a band label ("[5000.0, 10000.0)" -> 5000, "10+ y" -> 10)."""
    found = re.search(r"-?\d+(?:\.\d+)?", str(value))
    return float(found.group()) if found else math.inf


def ordered_segments(segments: pd.DataFrame, min_rows: int) -> pd.DataFrame:
    """Return the segment table in reading order, with a `judged` column.

    Segments keep their first-seen order; values of a band segment sort by their lower bound
    (5k before 10k), other values by name. A segment value with fewer than `min_rows` held-out
    rows is reported but not judged by gate 2 (`min_segment_rows`), so it is marked as such.
    """
    seg = segments.reset_index(drop=True)
    first_seen = {name: i for i, name in enumerate(dict.fromkeys(seg["segment"]))}
    keys = pd.DataFrame(
        {
            "segment": seg["segment"].map(first_seen),
            "bound": [
                _lower_bound(v) if s in BANDED else 0.0
                for s, v in zip(seg["segment"], seg["value"], strict=True)
            ],
            "name": seg["value"].astype(str),
        }
    )
    order = keys.sort_values(["segment", "bound", "name"], kind="stable").index
    seg = seg.loc[order].reset_index(drop=True)
    seg["judged"] = seg["rows"] >= min_rows
    return seg


def _segments_section(segments: pd.DataFrame, min_rows: int) -> tuple[str, str]:
    seg = ordered_segments(segments, min_rows)
    judged = seg[seg["judged"]]
    left_out = seg[~seg["judged"]]
    labels = [f"{a}={b}" for a, b in zip(judged["segment"], judged["value"], strict=True)]
    plot = (
        hr.barh(labels, judged["bias"].tolist(), "bias by segment", "median signed error")
        if len(judged)
        else ""
    )
    small = ", ".join(
        f"{html.escape(f'{a}={b}')} ({n:,} row{'' if n == 1 else 's'})"
        for a, b, n in left_out[["segment", "value", "rows"]].itertuples(index=False)
    )
    note = f"<p>The plot shows the segments gate 2 judges (at least {min_rows:,} held-out rows)"
    note += f"; not judged, too small: {small}.</p>" if small else ".</p>"
    return (
        "Segments (bias = median signed error; + means over-priced)",
        plot + note + hr.table(seg.itertuples(index=False), list(seg.columns)),
    )


def render(report: dict, evaluation: Evaluation) -> str:
    verdict = "Gate 2 passed." if report["passed"] else " ".join(report["reasons"])
    m = report["metrics"]
    rows = [(k, v) for k, v in m.items()] + [("priced share", report["priced_share"])]
    sections = [("Held-out metrics (priced rows)", hr.table(rows, ["metric", "value"]))]
    checks = [(c["check"], c["value"], c["bound"], c["passed"]) for c in report["checks"]]
    sections.append(("Checks", hr.table(checks, ["check", "value", "bound", "passed"])))
    comparison = [("naive baseline (median per make/model/year)", report["baseline"]["mape"])]
    if report["champion"]:
        c = report["champion"]
        comparison += [
            (f"challenger on rows both price ({c['rows']:,})", c["challenger"]["mape"]),
            (f"champion {c['version']} on the same rows", c["champion"]["mape"]),
        ]
    else:
        comparison.append(("champion", "none yet"))
    sections.append(("Comparisons (MAPE)", hr.table(comparison, ["model", "MAPE"])))
    sections.append(("Plots", _scatter(evaluation.scored) + _coverage(evaluation.scored)))
    min_rows = int((report.get("thresholds") or {}).get("min_segment_rows", 0))
    sections.append(_segments_section(evaluation.segments, min_rows))
    worst = evaluation.per_model.sort_values("mape", ascending=False).head(25)
    sections.append(
        (
            "Car models with the highest held-out error",
            hr.table(worst.itertuples(index=False), list(worst.columns)),
        )
    )
    title = f"Model evaluation: {report['model_version']} (registry v{report['registry_version']})"
    return hr.page(title, (report["passed"], verdict), sections)


def write_evaluation(
    out: Path, evaluation: Evaluation, gate: GateResult, record: dict, thresholds: dict
) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    report = to_json(evaluation, gate, record, thresholds)
    paths = {"json": out / "evaluation.json", "html": out / "evaluation.html"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths["html"].write_text(render(report, evaluation), encoding="utf-8")
    return paths
