"""The A/B experiment as text rows (the monitoring report, `carprice experiment show` and
`carprice promote --by-experiment`).

Shares, deviations and errors are in percent, their differences in percentage points (pp),
days in days; an interval is [low, high] at the experiment's confidence.
"""

from __future__ import annotations


def _pct(value, points: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.1f} pp" if points else f"{100 * value:.1f}%"


def _pct_ci(ci: list[float] | None, points: bool = False) -> str:
    return "-" if ci is None else f"[{_pct(ci[0], points)}, {_pct(ci[1], points)}]"


def _days(value) -> str:
    return "-" if value is None else f"{value:.1f} d"


def _days_ci(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{_days(ci[0])}, {_days(ci[1])}]"


TABLE_HEADER = (
    "arm",
    "model_version",
    "listings",
    "with_outcome",
    "sold_within_days",
    "median_days_to_sell",
    "adjusted_share",
    "towards_estimate",
    "listing_deviation",
    "realised_mape",
)
# one line per column of TABLE_HEADER, for a reader without the module's docstring
COLUMN_NOTES = (
    ("arm", "champion or challenger: each keyed listing is assigned one at random, for good"),
    ("estimates, with_outcome", "keyed estimates of the arm, and those whose fate is known"),
    ("sold_within_days", "share sold within the settings' days of listing [interval], n"),
    ("median_days_to_sell", "median days from listing to sale [interval]"),
    ("adjusted_share", "share of sellers who changed their asking price [interval]"),
    ("towards_estimate", "share of those changes that moved towards the estimate"),
    ("listing_deviation", "median asking price / estimate - 1: + means asked above the estimate"),
    ("realised_mape", "mean |estimate - sold price| / sold price [interval], n"),
)


def table_rows(result: dict) -> list[tuple[str, ...]]:
    """Return the experiment as text rows: a header, one row per arm, then four-column rows:
    the experiment and its window, the sample-ratio check, the listings left out, one row per
    metric (difference, interval, verdict with its margin and n against the planned n), and
    the decision with its reasons."""
    rows = [TABLE_HEADER]
    for a in result["arms"]:
        rows.append(
            (
                a["arm"],
                a["model_version"],
                str(a["listings"]),
                str(a["with_outcome"]),
                f"{_pct(a['conversion']['share'])} {_pct_ci(a['conversion']['ci'])} "
                f"n={a['conversion']['n']}",
                f"{_days(a['days_to_sell']['median'])} {_days_ci(a['days_to_sell']['ci'])}",
                f"{_pct(a['adjusted']['share'])} {_pct_ci(a['adjusted']['ci'])}",
                _pct(a["adjusted"]["towards_estimate_share"]),
                _pct(a["listing_deviation"]["median"]),
                f"{_pct(a['realised_mape']['value'])} {_pct_ci(a['realised_mape']['ci'])} "
                f"n={a['realised_mape']['n']}",
            )
        )
    e, check = result.get("experiment"), result.get("srm")
    if e:
        window = f"{e['started_at']} to {e['stopped_at'] or 'now'}"
        rows.append(("experiment", e["id"], window, f"challenger share {e['share']}"))
    if check:
        p_value = "-" if check["p_value"] is None else f"p = {check['p_value']:.3g}"
        counts = f"{check['counts'][0]} champion, {check['counts'][1]} challenger listings"
        rows.append(("sample ratio", counts, p_value, "passed" if check["passed"] else "BLOCKS"))
    if e:
        rows.append(("listings in both arms, left out", str(e["both_arms"]), "", ""))
    for name, entry in (result["comparison"] or {}).items():
        if name == "days_to_sell":
            difference, interval = _days(entry["difference"]), _days_ci(entry["ci"])
            margin = _days(entry["margin"])
        else:
            difference = _pct(entry["difference"], points=True)
            interval = _pct_ci(entry["ci"], points=True)
            margin = _pct(entry["margin"], points=True)
        rows.append(
            (
                f"challenger - champion: {name}",
                difference,
                interval,
                f"{entry['verdict']}; {'not worse' if entry['not_worse'] else 'may be worse'} "
                f"than margin {margin}; n {entry['rows'][0]}/{entry['rows'][1]} of "
                f"{entry['planned'][0]}/{entry['planned'][1]} planned",
            )
        )
    verdict = result["promotion"]
    rows.append(("promotion", "allowed" if verdict["allowed"] else "refused", *verdict["reasons"]))
    return rows
