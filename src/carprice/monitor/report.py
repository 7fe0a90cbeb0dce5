"""Monitoring report: monitoring.json for machines, monitoring.html with plots for people."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from carprice import htmlreport as hr
from carprice.model.report import _clean
from carprice.monitor import report_text as rt
from carprice.monitor.experiment_text import COLUMN_NOTES, table_rows
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
            "drift_bins": None if result.bins is None else result.bins.to_dict("records"),
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
        ("traffic judged", report.get("traffic") or "market"),
        ("champion", report.get("champion") or "none deployed"),
        ("challenger (shadow)", shadows or "none"),
    ]


def usage_section(usage: dict) -> str:
    estimates = usage["estimates"]
    by_version = [
        (version, n, rt.pct(n / estimates) if estimates else "-")
        for version, n in usage["by_version"].items()
    ]
    return (
        hr.table(
            [
                ("estimates", estimates),
                ("requests", usage["requests"]),
                ("unsupported share", rt.pct(usage["unsupported_share"])),
            ],
            ["", "value"],
        )
        + rt.notes(
            [
                ("estimates", "estimate rows in the log (a batch request logs one per car)"),
                (
                    "traffic judged",
                    "usage, drift, realised error, clients and experiment count "
                    "market traffic (market clients' and anonymous calls) unless run with "
                    "--include-synthetic; the table per client lists every client",
                ),
                (
                    "unsupported share",
                    "share of estimates not priced (mostly a car model without data)",
                ),
            ]
        )
        + hr.table(by_version, ["model version", "estimates", "share"])
        + hr.table(
            [(kind, *n.values()) for kind, n in usage.get("by_kind", {}).items()],
            ["kind of client", "estimates", "feedback posts", "sales"],
        )
        + hr.table(
            [tuple(r.values()) for r in usage.get("by_client", [])],
            ["client", "kind", "estimates", "feedback posts", "sales"],
        )
        + (
            hr.barh(
                list(usage["per_day"]),
                list(usage["per_day"].values()),
                "estimates per day",
                "estimates",
            )
            if usage["per_day"]
            else ""
        )
    )


def drift_section(result: MonitorResult, t: dict) -> str:
    d = result.drift
    lines = [
        (t["psi_warn"], f"warn {t['psi_warn']}", "#d08c00"),
        (t["psi_alert"], f"alert {t['psi_alert']}", "#b3261e"),
    ]
    body = (
        hr.barh(
            d["feature"].tolist(),
            d["psi"].fillna(0).tolist(),
            "PSI per feature",
            "PSI",
            lines=lines,
        )
        + hr.table(
            [
                (r.feature, "-" if pd.isna(r.psi) else f"{r.psi:.3f}", r.level)
                for r in d.itertuples()
            ],
            ["feature", "PSI", "level"],
        )
        + rt.drift_notes(t["psi_warn"], t["psi_alert"])
    )
    moved = d[d["level"] != "ok"]
    if result.bins is not None and not moved.empty:
        body += "<h3>Drifting features: training and recent distributions</h3>"
        for row in moved.itertuples():
            body += rt.distributions(result.bins, row.feature, row.psi)
    return body


def render(report: dict, result: MonitorResult) -> str:
    verdict = (
        "Retrain recommended: " + " ".join(report["reasons"])
        if report["retrain_recommended"]
        else "No retrain needed."
    )
    t = report["thresholds"]
    about = scope(report)
    sections = [
        ("What this report covers", hr.table(about, ["", "value"])),
        ("Usage", usage_section(report["usage"])),
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
        sections.append(
            (
                "Input and output drift against the champion's training data (PSI)",
                drift_section(result, t),
            )
        )
    r, minimum = result.realised, t["min_feedback"]
    sections.append(
        (
            "Realised error on sold prices, per model version",
            rt.error_table(r, ["model_version"], minimum) + rt.error_notes(minimum)
            if not r.empty
            else "<p>No sold-price feedback yet.</p>",
        )
    )
    if not result.segments.empty:
        sections.append(
            (
                "Realised error per segment",
                rt.error_table(result.segments, ["segment", "value"], minimum)
                + rt.error_notes(minimum),
            )
        )
    listing = report["listing_price"]
    priced = sum(listing["ratings"].values())
    sections.append(
        (
            "Listing prices against the suggestion",
            hr.table(
                [
                    ("listings with a price", listing["with_listing_price"]),
                    (
                        "median deviation from the estimate",
                        rt.pct(listing["median_deviation"], signed=True),
                    ),
                ],
                ["", "value"],
            )
            + rt.notes(
                [
                    (
                        "median deviation",
                        "median asking price / estimate - 1: + means sellers ask more than "
                        "the estimate",
                    )
                ]
            )
            + hr.table(
                [(k, n, rt.pct(n / priced)) for k, n in listing["ratings"].items()],
                ["price rating", "estimates", "share"],
            ),
        )
    )
    if result.clients is not None and not result.clients.empty:
        sections.append(
            (
                "Feedback per client (a flagged client's feedback is held out of training)",
                rt.client_table(result.clients, report["client_check"]["min_rows"]),
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
    if experiment and experiment.get("experiment"):  # only when an experiment was recorded
        rows, arms = table_rows(experiment), len(experiment["arms"])
        sections.append(
            (
                "A/B experiment: how sellers reacted to each arm's estimates",
                hr.table(rows[1 : arms + 1], rows[0])
                + rt.notes(COLUMN_NOTES)
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
                        ("champion MAPE", rt.pct(sh["champion_mape"])),
                        ("challenger MAPE", rt.pct(sh["challenger_mape"])),
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
