"""Gate 2 report: evaluation.json for machines, evaluation.html with plots for people."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

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
    fig, ax = hr.plt.subplots(figsize=(5, 5))
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
    seg = evaluation.segments
    labels = [f"{a}={b}" for a, b in zip(seg["segment"], seg["value"], strict=True)]
    sections.append(
        (
            "Segments (bias = median signed error; + means over-priced)",
            hr.barh(labels, seg["bias"].tolist(), "bias by segment", "median signed error")
            + hr.table(seg.itertuples(index=False), list(seg.columns)),
        )
    )
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
