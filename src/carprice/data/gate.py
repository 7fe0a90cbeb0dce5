"""Gate 1 (data): enough clean rows, a sane quarantined share, car models we may price.

`GateResult` is the verdict shape every gate returns."""

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


def data_gate(result, thresholds: DataThresholds, table=None):
    """Gate 1 on a validation result: return the sufficiency table (`table` when already
    counted, as on partitions) and the verdict."""
    from carprice.data.sufficiency import sufficiency

    if table is None:
        table = sufficiency(result.clean, result.quarantine, thresholds.min_rows_per_model)
    gate = check_data_gate(
        rows_in=result.rows_in,
        rows_clean=len(result.clean),
        supported_models=int(table["supported"].sum()),
        column_problems=result.column_problems,
        thresholds=thresholds,
    )
    return table, gate
