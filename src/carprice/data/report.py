"""Gate 1 outputs: clean rows, quarantine, supported models and the data report (JSON + HTML)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from carprice import htmlreport as hr
from carprice.data.gate import GateResult
from carprice.data.rules import ValidationResult
from carprice.data.sufficiency import supported_rows_share


def build_report(
    result: ValidationResult, table: pd.DataFrame, gate: GateResult, source: str
) -> dict:
    """Summarise a validation run as the JSON-ready data report."""
    supported = table[table["supported"]]
    return {
        "source": source,
        "rows_in": result.rows_in,
        "rows_clean": len(result.clean),
        "rows_quarantined": len(result.quarantine),
        "passed": gate.passed,
        "gate_reasons": gate.reasons,
        "reasons": result.reason_counts,
        "column_problems": result.column_problems,
        "models_seen": len(table),
        "supported_models": len(supported),
        "supported_rows_share": round(supported_rows_share(table), 6),
        "supported": [
            {"make": r.make, "model": r.model, "clean_rows": int(r.clean_rows)}
            for r in supported.itertuples()
        ],
    }


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def write_outputs(
    out_dir: Path,
    result: ValidationResult,
    table: pd.DataFrame,
    report: dict,
    write_clean=None,
) -> dict[str, Path]:
    """Write every Gate 1 output into a directory and return their paths.

    `write_clean(path)` writes the clean rows when `result.clean` does not hold them all (gate 1
    on partitions streams them from the workers).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "clean": out_dir / "clean.parquet",
        "quarantine": out_dir / "quarantine.parquet",
        "quarantine_csv": out_dir / "quarantine.csv",
        "supported_models": out_dir / "supported_models.csv",
        "report_json": out_dir / "data_report.json",
        "report_html": out_dir / "data_report.html",
    }
    quarantine = result.quarantine.astype(
        {c: "str" for c in result.quarantine.columns if c not in ("row", "reasons")}
    )
    write_clean = write_clean or (lambda p: result.clean.to_parquet(p, index=False))
    _write_atomic(paths["clean"], write_clean)
    _write_atomic(paths["quarantine"], lambda p: quarantine.to_parquet(p, index=False))
    _write_atomic(paths["quarantine_csv"], lambda p: result.quarantine.to_csv(p, index=False))
    _write_atomic(paths["supported_models"], lambda p: table.to_csv(p, index=False))
    text = json.dumps(report, indent=2) + "\n"
    _write_atomic(paths["report_json"], lambda p: p.write_text(text, encoding="utf-8"))
    page = render_html(result, table, report)
    _write_atomic(paths["report_html"], lambda p: p.write_text(page, encoding="utf-8"))
    return paths


def write_run_report(run_dir: Path, files: dict[str, Path]) -> dict[str, Path]:
    """Copy a run's data report (JSON and HTML) into its own run folder; return the copies."""
    run_dir.mkdir(parents=True, exist_ok=True)
    copies = {}
    for key in ("report_json", "report_html"):
        copies[key] = run_dir / files[key].name
        _write_atomic(copies[key], lambda p, src=files[key]: shutil.copyfile(src, p))
    return copies


def banner(report: dict) -> str | None:
    """Return the warning a failed run's page opens with (None for a passing run)."""
    if report["passed"]:
        return None
    production = report.get("production")
    serving = (
        f"Production still serves {production}." if production else "Nothing is in production."
    )
    return f"This gate 1 run FAILED. {serving}"


def _about(report: dict) -> list[tuple[str, str]]:
    facts = [("run", report["run"])] if report.get("run") else []
    if report.get("created_at"):
        facts.append(("made", f"{report['created_at']} (UTC)"))
    if "production" in report:
        facts.append(("in production", report["production"] or "nothing"))
    return facts


def render_html(result: ValidationResult, table: pd.DataFrame, report: dict) -> str:
    """Render the human-readable data report."""
    verdict = "Gate 1 passed." if report["passed"] else " ".join(report["gate_reasons"])
    reasons = sorted(report["reasons"].items(), key=lambda kv: -kv[1])
    top = table.head(30)
    clean = result.clean
    summary = hr.table(
        [
            ("rows in", report["rows_in"]),
            ("clean", report["rows_clean"]),
            ("quarantined", report["rows_quarantined"]),
            ("car models seen", report["models_seen"]),
            ("supported models", report["supported_models"]),
            ("clean rows in supported models", f"{report['supported_rows_share']:.1%}"),
        ],
        ["", "value"],
    )
    sections = [("Summary", summary)]
    if reasons:
        sections.append(
            (
                "Quarantine reasons (a row may have several)",
                hr.barh([k for k, _ in reasons], [v for _, v in reasons], "rows per reason")
                + hr.table(reasons, ["reason", "rows"]),
            )
        )
    if len(top):
        labels = [f"{m} {n}" for m, n in zip(top["make"], top["model"], strict=True)]
        sections.append(
            (
                "Clean rows per car model (top 30)",
                hr.barh(labels, top["clean_rows"].tolist(), "clean rows per model")
                + hr.table(top.itertuples(index=False), list(top.columns)),
            )
        )
    if len(clean):
        sections.append(
            (
                "Distributions of clean rows",
                hr.hist(np.log10(clean["price"]), "price", "log10 EUR")
                + hr.hist(clean["mileage"] / 1000, "mileage", "1,000 km")
                + hr.hist(clean["year"], "first registration", "year", bins=30)
                + hr.hist(clean["hp"], "power", "hp"),
            )
        )
    return hr.page(
        f"Data report: {report['source']}",
        (report["passed"], verdict),
        sections,
        banner=banner(report),
        about=_about(report),
    )
