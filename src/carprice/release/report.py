"""Gate 3 report: e2e.json for machines, e2e.html for people, service.log beside them."""

from __future__ import annotations

import html
import json
from pathlib import Path

from carprice import htmlreport as hr


def write_report(out: Path, report: dict) -> dict[str, Path]:
    """Write the report files into `out` and return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in report.items() if k != "service_log"}
    paths = {"json": out / "e2e.json", "html": out / "e2e.html", "log": out / "service.log"}
    paths["json"].write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    paths["log"].write_text(report.get("service_log", ""), encoding="utf-8")
    paths["html"].write_text(render(data), encoding="utf-8")
    return paths


def render(report: dict) -> str:
    """Return the report as a self-contained HTML page."""
    passed = report.get("passed", False)
    target = report.get("target") or {}
    sentence = (
        f"Gate 3 passed: {target.get('kind', '?')} serves {report['model_version']} exactly as "
        "the offline model."
        if passed
        else "Gate 3 failed: " + " ".join(report.get("reasons", []))
    )
    checks = hr.table(
        [(c["check"], c["passed"], c["detail"]) for c in report.get("checks", [])],
        ["check", "passed", "detail"],
    )
    sections = [("Checks", checks)]
    sections.append(
        ("Target", hr.table([(k, str(v)) for k, v in target.items()], ["field", "value"]))
    )
    runtime = report.get("runtime") or {}
    if runtime:
        expected, reported = runtime.get("expected") or {}, runtime.get("reported") or {}
        rows = [
            (
                name,
                "not checked" if expected.get(name) is None else expected[name],
                "null" if reported.get(name, "") is None else reported.get(name, "not reported"),
            )
            for name in ("scorer", "image_id")
        ]
        sections.append(
            ("Runtime (GET /v1/model)", hr.table(rows, ["field", "expected", "reported"]))
        )
    parity = report.get("parity") or {}
    mismatches = [
        (mode, m["id"], "; ".join(m["diff"]))
        for mode, result in parity.items()
        if isinstance(result, dict)
        for m in result.get("first", [])
    ]
    parity_html = f"<p>Tolerance: {html.escape(report.get('parity_tolerance', ''))}.</p>"
    counts = [
        (mode, error)
        for mode, result in parity.items()
        if isinstance(result, dict)
        for error in result.get("first_count_errors", [])
    ]
    if counts:
        parity_html += hr.table(counts, ["mode", "answers per request"])
    if mismatches:
        parity_html += hr.table(mismatches, ["mode", "case", "difference"])
    sections.append(("Parity with the offline model", parity_html))
    contracts = report.get("contracts") or {}
    sections.append(
        (
            "Consumer contracts",
            hr.table(
                [
                    (name, r["passed"], r["file"], r.get("ms") or "", "; ".join(r["errors"][:3]))
                    for name, r in contracts.items()
                ],
                ["consumer", "passed", "contract", "ms", "first errors"],
            ),
        )
    )
    latency = report.get("latency") or {}
    if latency:
        sections.append(("Latency", hr.table(list(latency.items()), ["measure", "value"])))
    settings = report.get("settings") or {}
    sections.append(("Settings (params.yaml gate3)", hr.table(list(settings.items()), ["", ""])))
    return hr.page(f"Gate 3 (artifact): {report['model_version']}", (passed, sentence), sections)
