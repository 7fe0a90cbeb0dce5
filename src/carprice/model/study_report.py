"""The quality study as markdown: tables for the candidates, intervals, learning curve, floor.

The model-quality targets are judged here, on the current model's cross-validated numbers.
"""

from __future__ import annotations

import pandas as pd

from carprice.model.cv import CURRENT
from carprice.model.study import GROUPED, StudyResult

# The model-quality targets, on held-out real listings: (name, measure, low, high).
TARGETS = (
    ("listings priced", "priced", 0.95, None),
    ("MAPE", "mape", None, 0.090),
    ("median APE", "median_ape", None, 0.069),
    ("80% interval coverage", "coverage", 0.78, 0.82),
)


def _pct(value: float, digits: int = 2) -> str:
    return "n/a" if pd.isna(value) else f"{100 * value:.{digits}f}%"


def _pm(row, name: str) -> str:
    return f"{_pct(row[name])} ± {_pct(row[f'{name}_std'])}"


def target_rows(result: StudyResult) -> list[dict]:
    """Judge the current model's CV numbers against the model-quality targets."""
    current = result.candidates[
        (result.candidates["candidate"] == CURRENT) & (result.candidates["folds"] == GROUPED)
    ].iloc[0]
    out = []
    for name, measure, low, high in TARGETS:
        value = float(current[measure])
        met = (low is None or value >= low) and (high is None or value <= high)
        wanted = " to ".join(_pct(v, 0 if v in (0.95, 0.78, 0.82) else 1) for v in (low, high) if v)
        wanted = (">= " if high is None else "<= " if low is None else "") + wanted
        out.append({"target": name, "wanted": wanted, "measured": value, "met": met})
    return out


def markdown(result: StudyResult, command: str) -> str:
    """Return the study report as markdown."""
    s, floor = result.settings, result.floor
    lines = [
        "# Model quality study",
        "",
        f"Command: `{command}`  ",
        f"{s['rows']:,} train + calibration rows ({s['cars']:,} cars), {s['folds']} folds grouped "
        f"by car; test-split rows excluded. Wall time {result.seconds:.0f} s.",
        "",
        "## Point-model candidates",
        "",
        "| candidate | folds | CV MAPE | median APE | priced | 80% coverage | vs current "
        "(± fold noise) | verdict | worst segment coverage | fit s/fold |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in result.candidates.iterrows():
        delta = f"{100 * r['mape_delta']:+.2f} ± {100 * r['mape_delta_std']:.2f} pts"
        lines.append(
            f"| {r['candidate']} | {r['folds']} | {_pm(r, 'mape')} | {_pm(r, 'median_ape')} | "
            f"{_pct(r['priced'], 1)} | {_pct(r['coverage'], 1)} | {delta} | {r['verdict']} | "
            f"{_pct(r['worst_segment_coverage'], 1)} {r['worst_segment']} | "
            f"{r['fit_seconds']:.1f} |"
        )
    lines += ["", "## Interval variants (around the current point model)", ""]
    lines += [
        "| interval | 80% coverage | median width | worst segment coverage | what |",
        "|---|---|---|---|---|",
    ]
    for _, r in result.intervals.iterrows():
        lines.append(
            f"| {r['interval']} | {_pm(r, 'coverage')} | {_pm(r, 'interval_width')} | "
            f"{_pct(r['worst_segment_coverage'], 1)} {r['worst_segment']} | {r['about']} |"
        )
    lines += ["", "## Learning curve (current settings)", ""]
    lines += ["| share of training rows | rows | CV MAPE | median APE |", "|---|---|---|---|"]
    for _, r in result.curve.iterrows():
        lines.append(
            f"| {r['fraction']:.0%} | {int(r['training_rows']):,} | {_pm(r, 'mape')} | "
            f"{_pm(r, 'median_ape')} |"
        )
    rel = result.relists
    lines += [
        "",
        "## Noise floor and relisted cars",
        "",
        f"Identical-spec noise floor on these rows: MAPE {_pct(floor.mape)}, median APE "
        f"{_pct(floor.median_ape)} ({floor.rows:,} listings in {floor.groups:,} groups). "
        f"The current model on the priced ones among them (CV): MAPE "
        f"{_pct(result.model_on_floor_rows.get('mape'))}, median APE "
        f"{_pct(result.model_on_floor_rows.get('median_ape'))} "
        f"({result.model_on_floor_rows.get('rows', 0):,} rows).",
        "",
        f"Cars listed more than once (same make, model, fuel, gear, year, hp, mileage within "
        f"one 10,000 km bucket): {rel['relisted_cars']:,} cars "
        f"in {rel['relisted_rows']:,} of {rel['rows']:,} rows; {rel['cars_with_changed_price']:,}"
        f" with more than one price; split across grouped folds: "
        f"{rel['cars_split_across_folds']}.",
        "",
        "## Targets (current model, grouped CV)",
        "",
        "| target | wanted | measured | met |",
        "|---|---|---|---|",
    ]
    for t in target_rows(result):
        lines.append(
            f"| {t['target']} | {t['wanted']} | {_pct(t['measured'])} | "
            f"{'met' if t['met'] else 'not met'} |"
        )
    return "\n".join(lines) + "\n"
