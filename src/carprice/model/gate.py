"""Gate 2 (model): error under thresholds, better than naive, not worse than production, fair."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from carprice.data.gate import GateResult
from carprice.model.metrics import coverage_upper_bound

SOURCES = ("real", "simulated")  # what a snapshot's manifest says its listings are
BOUND_KEYS = ("max_mape", "max_median_ape", "baseline_margin")  # what differs by source


def _source_bounds(bounds: Any) -> dict[str, dict[str, float]]:
    """Check `gate2.bounds`: one of each `BOUND_KEYS` for each data source."""
    if not isinstance(bounds, dict) or set(bounds) != set(SOURCES):
        found = sorted(bounds) if isinstance(bounds, dict) else type(bounds).__name__
        raise ValueError(f"gate2.bounds: expected the sources {list(SOURCES)}; found {found}")
    for source, values in bounds.items():
        if not isinstance(values, dict) or set(values) != set(BOUND_KEYS):
            found = sorted(values) if isinstance(values, dict) else type(values).__name__
            raise ValueError(
                f"gate2.bounds.{source}: expected the keys {list(BOUND_KEYS)}; found {found}"
            )
    return bounds


@dataclass(frozen=True)
class ModelThresholds:
    """Gate 2 thresholds, from the `gate2` section of params.yaml, for one data source.

    `max_mape`, `max_median_ape` and `baseline_margin` are those of `source`
    (`gate2.bounds.<source>`, each derived by its rule on that source's listings); everything else
    is shared by the sources.
    """

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
    segment_min_coverage: float
    segment_coverage_confidence: float
    withdraw_min_rows: int
    withdraw_max_mape: float
    source: str = "real"

    @classmethod
    def from_params(cls, section: dict[str, Any], source: str = "real") -> ModelThresholds:
        """Read `gate2`, with the error bounds of `source` (an unknown source reads `real`)."""
        section = dict(section)
        bounds = _source_bounds(section.pop("bounds", None))
        section.pop("bounds_rule", None)  # how the bounds were derived: documentation and tests
        shared = {f.name for f in fields(cls)} - set(BOUND_KEYS) - {"source"}
        unknown, missing = set(section) - shared, shared - set(section)
        if unknown or missing:
            raise ValueError(
                f"gate2 parameters: unknown {sorted(unknown)}, missing {sorted(missing)}"
            )
        source = source if source in SOURCES else "real"
        return cls(**section, **bounds[source], source=source)


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
        f"MAPE {m['mape']:.2%} is above the threshold {t.max_mape:.2%} ({t.source} listings).",
    )
    check(
        "median_ape",
        m["median_ape"],
        f"<= {t.max_median_ape}",
        m["median_ape"] <= t.max_median_ape,
        f"Median APE {m['median_ape']:.2%} is above the threshold {t.max_median_ape:.2%} "
        f"({t.source} listings).",
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
        coverage = getattr(row, "coverage", None)
        if coverage is None or coverage != coverage:  # no interval bounds were scored
            continue
        upper = coverage_upper_bound(coverage, row.rows, t.segment_coverage_confidence)
        check(
            f"{name} coverage",
            coverage,
            f"{t.segment_coverage_confidence:.0%} upper bound {upper:.4f} >= "
            f"{t.segment_min_coverage}",
            upper >= t.segment_min_coverage,
            f"Segment {row.segment}={row.value} has interval coverage {coverage:.1%} on "
            f"{row.rows:,} rows: below {t.segment_min_coverage:.0%} even at the upper end of "
            f"its {t.segment_coverage_confidence:.0%} confidence bound ({upper:.1%}).",
        )
    reasons = [c["reason"] for c in checks if not c["passed"]]
    return GateResult("gate 2 (model)", not reasons, reasons, checks)
