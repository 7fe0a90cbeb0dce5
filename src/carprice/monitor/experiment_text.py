"""The A/B experiment as text rows (the monitoring report, `carprice experiment show` and
`carprice promote --by-experiment`)."""

from __future__ import annotations


def _ci(ci: list[float] | None, digits: int = 3) -> str:
    return "-" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


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
        rows.append(
            (
                f"challenger - champion: {name}",
                _num(entry["difference"], 4),
                _ci(entry["ci"], 4),
                f"{entry['verdict']}; {'not worse' if entry['not_worse'] else 'may be worse'} "
                f"than margin {entry['margin']:.4g}; n {entry['rows'][0]}/{entry['rows'][1]} of "
                f"{entry['planned'][0]}/{entry['planned'][1]} planned",
            )
        )
    verdict = result["promotion"]
    rows.append(("promotion", "allowed" if verdict["allowed"] else "refused", *verdict["reasons"]))
    return rows
