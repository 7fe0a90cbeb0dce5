"""Monitoring report: monitoring.json for machines, monitoring.html with plots for people."""

from __future__ import annotations

import json
from pathlib import Path

from carprice import htmlreport as hr
from carprice.model.report import _clean
from carprice.monitor.experiment_text import table_rows
from carprice.monitor.verdict import MonitorResult


def to_json(result: MonitorResult, meta: dict) -> dict:
    return _clean(
        {
            **meta,
            "retrain_recommended": result.retrain,
            "reasons": result.reasons,
            "usage": result.usage,
            "drift": result.drift.to_dict(orient="records"),
            "realised_by_version": result.realised.to_dict(orient="records"),
            "realised_by_segment": result.segments.to_dict(orient="records"),
            "listing_price": result.listing,
            "shadow": result.shadow,
            "clients": None if result.clients is None else result.clients.to_dict("records"),
            "opinions": result.opinions,
        }
    )


def scope(report: dict) -> list[tuple[str, str]]:
    """Return what the report judged: when it was made, the window read and the versions."""
    win = report.get("window") or {}
    if win.get("estimates"):
        span = f"{win['first_estimate']} to {win['last_estimate']} ({win['estimates']:,} estimates)"
    else:
        span = "no logged estimates"
    if win.get("since"):
        span += f", from {win['since']} on"
    shadow = report.get("shadow") or {}
    logged = sorted(shadow.get("challenger_versions") or {})
    challenger = report.get("challenger")
    shadows = ", ".join(dict.fromkeys([*([challenger] if challenger else []), *logged]))
    return [
        ("made", f"{report.get('created_at') or 'unknown'} (UTC)"),
        ("window", span),
        ("champion", report.get("champion") or "none deployed"),
        ("challenger (shadow)", shadows or "none"),
    ]


def render(report: dict, result: MonitorResult) -> str:
    verdict = (
        "Retrain recommended: " + " ".join(report["reasons"])
        if report["retrain_recommended"]
        else "No retrain needed."
    )
    usage = report["usage"]
    about = scope(report)
    sections = [
        ("What this report covers", hr.table(about, ["", "value"])),
        (
            "Usage",
            hr.table(
                [
                    ("estimates", usage["estimates"]),
                    ("requests", usage["requests"]),
                    ("unsupported share", f"{usage['unsupported_share']:.1%}"),
                ],
                ["", "value"],
            )
            + hr.table(usage["by_version"].items(), ["model version", "estimates"])
            + (
                hr.barh(
                    list(usage["per_day"]),
                    list(usage["per_day"].values()),
                    "estimates per day",
                    "estimates",
                )
                if usage["per_day"]
                else ""
            ),
        ),
    ]
    if result.opinions:
        columns = list(result.opinions[0])
        sections.append(
            (
                "Sellers' opinions of the estimates (complaints: too_low + too_high)",
                hr.table([[o[c] for c in columns] for o in result.opinions], columns),
            )
        )
    if not result.drift.empty:
        d = result.drift
        sections.append(
            (
                "Input and output drift against the champion's training data (PSI)",
                hr.barh(d["feature"].tolist(), d["psi"].fillna(0).tolist(), "PSI", "PSI")
                + hr.table(d.itertuples(index=False), list(d.columns)),
            )
        )
    r = result.realised
    sections.append(
        (
            "Realised error on sold prices, per model version",
            hr.table(r.itertuples(index=False), list(r.columns))
            if not r.empty
            else "<p>No sold-price feedback yet.</p>",
        )
    )
    if not result.segments.empty:
        s = result.segments
        sections.append(
            ("Realised error per segment", hr.table(s.itertuples(index=False), list(s.columns)))
        )
    listing = report["listing_price"]
    sections.append(
        (
            "Listing prices against the suggestion",
            hr.table(
                [
                    ("listings with a price", listing["with_listing_price"]),
                    ("median deviation from the estimate", listing["median_deviation"]),
                ],
                ["", "value"],
            )
            + hr.table(listing["ratings"].items(), ["price rating", "estimates"]),
        )
    )
    if result.clients is not None and not result.clients.empty:
        c = result.clients
        sections.append(
            (
                "Feedback per client (a flagged client's feedback is held out of training)",
                hr.table(c.itertuples(index=False), list(c.columns)),
            )
        )
    fresh = report.get("freshness")
    if fresh:
        sections.append(
            (
                "Freshness of the log (rows answered but not in the store yet)",
                hr.table(fresh.items(), ["", "value"]),
            )
        )
    experiment = report.get("experiment")
    if experiment and experiment.get("arms"):
        rows, arms = table_rows(experiment), len(experiment["arms"])
        sections.append(
            (
                "A/B experiment: how sellers reacted to each arm's estimates",
                hr.table(rows[1 : arms + 1], rows[0])
                + hr.table(rows[arms + 1 :], ["", "difference", "interval", "verdict"]),
            )
        )
    if report["shadow"]:
        sh = report["shadow"]
        sections.append(
            (
                "Shadow challenger vs champion on the same sold cars",
                hr.table(
                    [
                        ("sold cars", sh["sold"]),
                        ("champion MAPE", sh["champion_mape"]),
                        ("challenger MAPE", sh["challenger_mape"]),
                    ],
                    ["", "value"],
                ),
            )
        )
    return hr.page(
        "carprice monitoring",
        (not report["retrain_recommended"], verdict),
        sections,
        about=about,
    )


def write_monitoring(out: Path, result: MonitorResult, meta: dict) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    report = to_json(result, meta)
    paths = {"json": out / "monitoring.json", "html": out / "monitoring.html"}
    paths["json"].write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    paths["html"].write_text(render(report, result), encoding="utf-8")
    return paths
