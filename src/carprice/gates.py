"""Release gates: each turns a stage's measurements into a pass/fail verdict with reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from carprice.config import from_section


@dataclass(frozen=True)
class GateResult:
    """The verdict of one gate; `reasons` say why it failed, one sentence each."""

    gate: str
    passed: bool
    reasons: list[str] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        if self.passed:
            return f"{self.gate}: passed"
        return f"{self.gate}: FAILED: " + " ".join(self.reasons)


@dataclass(frozen=True)
class DataThresholds:
    """Gate 1 thresholds, from the `gate1` section of params.yaml."""

    min_rows_per_model: int = 50
    min_clean_rows: int = 1000
    max_quarantined_share: float = 0.25

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> DataThresholds:
        return from_section(cls, section, "gate1")


def check_data_gate(
    *,
    rows_in: int,
    rows_clean: int,
    supported_models: int,
    column_problems: list[str],
    thresholds: DataThresholds,
) -> GateResult:
    """Gate 1: is there enough clean data, and did the upstream data arrive intact?"""
    reasons = [f"{problem.capitalize()}." for problem in column_problems]
    quarantined_share = (rows_in - rows_clean) / rows_in if rows_in else 1.0
    if rows_clean < thresholds.min_clean_rows:
        reasons.append(
            f"Only {rows_clean:,} clean rows, below the minimum of {thresholds.min_clean_rows:,}."
        )
    if quarantined_share > thresholds.max_quarantined_share:
        reasons.append(
            f"{quarantined_share:.1%} of rows were quarantined, above the maximum of "
            f"{thresholds.max_quarantined_share:.1%}: the upstream data looks broken."
        )
    if supported_models == 0 and rows_clean:
        reasons.append(
            f"No car model has the {thresholds.min_rows_per_model} clean rows needed to be priced."
        )
    return GateResult("gate 1 (data)", not reasons, reasons)


def data_gate(result, thresholds: DataThresholds):
    """Gate 1 on a validation result: return the sufficiency table and the verdict."""
    from carprice.sufficiency import sufficiency

    table = sufficiency(result.clean, result.quarantine, thresholds.min_rows_per_model)
    gate = check_data_gate(
        rows_in=result.rows_in,
        rows_clean=len(result.clean),
        supported_models=int(table["supported"].sum()),
        column_problems=result.column_problems,
        thresholds=thresholds,
    )
    return table, gate


@dataclass(frozen=True)
class ModelThresholds:
    """Gate 2 thresholds, from the `gate2` section of params.yaml."""

    max_mape: float
    max_median_ape: float
    coverage_min: float
    coverage_max: float
    min_priced_share: float
    baseline_margin: float
    champion_tolerance: float
    min_segment_rows: int
    segment_max_mape: float
    segment_max_abs_bias: float
    withdraw_min_rows: int
    withdraw_max_mape: float

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> ModelThresholds:
        unknown = set(section) - set(cls.__dataclass_fields__)
        missing = set(cls.__dataclass_fields__) - set(section)
        if unknown or missing:
            raise ValueError(
                f"gate2 parameters: unknown {sorted(unknown)}, missing {sorted(missing)}"
            )
        return cls(**section)


def check_model_gate(evaluation, t: ModelThresholds) -> GateResult:
    """Gate 2: is the error acceptable, better than naive, not worse than production, fair?"""
    m = evaluation.metrics
    checks: list[dict] = []

    def check(name: str, value: float, bound: str, ok: bool, why: str) -> None:
        checks.append(
            {
                "check": name,
                "value": value,
                "bound": bound,
                "passed": bool(ok),
                "reason": "" if ok else why,
            }
        )

    if m.get("rows", 0) == 0:
        return GateResult("gate 2 (model)", False, ["No held-out row could be priced."])
    check(
        "mape",
        m["mape"],
        f"<= {t.max_mape}",
        m["mape"] <= t.max_mape,
        f"MAPE {m['mape']:.2%} is above the threshold {t.max_mape:.2%}.",
    )
    check(
        "median_ape",
        m["median_ape"],
        f"<= {t.max_median_ape}",
        m["median_ape"] <= t.max_median_ape,
        f"Median APE {m['median_ape']:.2%} is above the threshold {t.max_median_ape:.2%}.",
    )
    cov = m["coverage"]
    check(
        "coverage",
        cov,
        f"[{t.coverage_min}, {t.coverage_max}]",
        t.coverage_min <= cov <= t.coverage_max,
        f"Interval coverage {cov:.1%} is outside [{t.coverage_min:.0%}, {t.coverage_max:.0%}].",
    )
    share = evaluation.priced_share
    check(
        "priced_share",
        share,
        f">= {t.min_priced_share}",
        share >= t.min_priced_share,
        f"Only {share:.1%} of held-out listings can be priced (minimum {t.min_priced_share:.0%}).",
    )
    base = evaluation.baseline["mape"]
    bound = base * (1 - t.baseline_margin)
    check(
        "vs_baseline",
        m["mape"],
        f"<= {bound:.4f}",
        m["mape"] <= bound,
        f"MAPE {m['mape']:.2%} does not beat the naive baseline ({base:.2%}) "
        f"by {t.baseline_margin:.0%}.",
    )
    if evaluation.champion is not None:
        ours = evaluation.champion["challenger"]["mape"]
        theirs = evaluation.champion["champion"]["mape"]
        bound = theirs * (1 + t.champion_tolerance)
        check(
            "vs_champion",
            ours,
            f"<= {bound:.4f}",
            ours <= bound,
            f"MAPE {ours:.2%} is worse than the champion's {theirs:.2%} on the same rows "
            f"beyond the tolerance of {t.champion_tolerance:.0%}.",
        )
    seg = evaluation.segments
    seg = seg[seg["rows"] >= t.min_segment_rows]
    for row in seg.itertuples():
        name = f"segment {row.segment}={row.value}"
        check(
            f"{name} mape",
            row.mape,
            f"<= {t.segment_max_mape}",
            row.mape <= t.segment_max_mape,
            f"Segment {row.segment}={row.value} has MAPE {row.mape:.2%} "
            f"(maximum {t.segment_max_mape:.0%}).",
        )
        check(
            f"{name} bias",
            row.bias,
            f"|bias| <= {t.segment_max_abs_bias}",
            abs(row.bias) <= t.segment_max_abs_bias,
            f"Segment {row.segment}={row.value} is priced {row.bias:+.1%} off "
            f"(maximum ±{t.segment_max_abs_bias:.0%}).",
        )
    reasons = [c["reason"] for c in checks if not c["passed"]]
    return GateResult("gate 2 (model)", not reasons, reasons, checks)
