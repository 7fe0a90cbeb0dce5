"""The A/B experiment as text rows (the monitoring report and `carprice release experiment`)."""

from __future__ import annotations


def _ci(ci: list[float] | None, digits: int = 3) -> str:
    return "-" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


TABLE_HEADER = (
    "arm",
    "model_version",
    "estimates",
    "with_outcome",
    "sold_within_days",
    "median_days_to_sell",
    "adjusted_share",
    "towards_estimate",
    "listing_deviation",
    "realised_mape",
)


def table_rows(result: dict) -> list[tuple[str, ...]]:
    """Return the experiment as text rows: a header, one row per arm and version, then one
    row per judged metric (difference, interval, verdict)."""
    rows = [TABLE_HEADER]
    for a in result["arms"]:
        rows.append(
            (
                a["arm"],
                a["model_version"],
                str(a["estimates"]),
                str(a["with_outcome"]),
                f"{_num(a['conversion']['share'])} {_ci(a['conversion']['ci'])} "
                f"n={a['conversion']['n']}",
                f"{_num(a['days_to_sell']['median'], 1)} {_ci(a['days_to_sell']['ci'], 1)}",
                f"{_num(a['adjusted']['share'])} {_ci(a['adjusted']['ci'])}",
                _num(a["adjusted"]["towards_estimate_share"]),
                f"{_num(a['listing_deviation']['median'])}",
                f"{_num(a['realised_mape']['value'])} {_ci(a['realised_mape']['ci'])} "
                f"n={a['realised_mape']['n']}",
            )
        )
    for name, entry in (result["comparison"] or {}).items():
        rows.append(
            (
                f"challenger - champion: {name}",
                _num(entry["difference"], 4),
                _ci(entry["ci"], 4),
                entry["verdict"],
            )
        )
    verdict = result["promotion"]
    rows.append(("promotion", "allowed" if verdict["allowed"] else "refused", *verdict["reasons"]))
    return rows
