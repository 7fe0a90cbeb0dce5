"""The monitoring report's tables for people: percentages, a line per column, small samples
flagged. (monitoring.json keeps the fractions.)"""

from __future__ import annotations

import html
import math

import pandas as pd

from carprice import htmlreport as hr

ERROR_NOTES = (
    ("sold", "sold cars whose estimate is in the log (the latest sale reported per estimate)"),
    ("MAPE", "mean |estimate - sold price| / sold price"),
    ("median APE", "the median of the same: half the sold cars were estimated closer than this"),
    (
        "bias",
        "median (estimate - sold price) / sold price: + means the estimates were above the "
        "prices the cars sold for, - below",
    ),
    ("coverage", "share of sold prices inside the estimate's interval [price_low, price_high]"),
)
CLIENT_NOTES = (
    ("feedback, sold", "feedback posts of the client, and how many report a sale"),
    ("compared", "its sales compared with other clients' sales of the same car"),
    (
        "sold vs others",
        "median of its sold price / estimate against the other clients' on the same car "
        "(from log_shift in monitoring.json): + means it reports higher prices",
    ),
    ("p-value", "sign test: how likely a shift this consistent is by chance"),
    ("flagged", "apart from the others: its feedback is held out of training"),
)


def pct(value, signed: bool = False) -> str:
    """A fraction as a percentage (`-` when unknown)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:+.1f}%" if signed else f"{100 * value:.1f}%"


def notes(lines) -> str:
    """One line per column: `name: what it means`."""
    items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in lines)
    return f"<ul class='about'>{items}</ul>"


def sample(n: int, minimum: int) -> str:
    """`judged`, or the flag of a sample below the documented minimum."""
    return "judged" if n >= minimum else f"small: n < {minimum:,}, not judged"


def error_table(frame: pd.DataFrame, keys: list[str], minimum: int) -> str:
    """Realised error per group in percent, each row's sample size flagged against `minimum`."""
    rows = [
        (
            *(getattr(row, k) for k in keys),
            int(row.sold),
            pct(row.mape),
            pct(row.median_ape),
            pct(row.bias, signed=True),
            pct(row.coverage),
            sample(int(row.sold), minimum),
        )
        for row in frame.itertuples(index=False)
    ]
    header = [*keys, "sold", "MAPE", "median APE", "bias", "coverage", "sample"]
    return hr.table(rows, header)


def error_notes(minimum: int) -> str:
    return notes(
        [
            *ERROR_NOTES,
            (
                "sample",
                f"fewer than {minimum:,} sold cars (params.yaml monitor.min_feedback) are "
                "shown but not judged: their figures can be far off by chance",
            ),
        ]
    )


def client_table(clients: pd.DataFrame, minimum: int) -> str:
    """Feedback per client, the shift of its sold prices in percent, small samples flagged."""
    rows = [
        (
            str(row.client),
            int(row.feedback),
            int(row.sold),
            int(row.compared),
            pct(math.exp(row.log_shift) - 1, signed=True) if pd.notna(row.log_shift) else "-",
            f"{row.p_value:.2g}" if pd.notna(row.p_value) else "-",
            bool(row.flagged),
            sample(int(row.compared), minimum),
        )
        for row in clients.itertuples(index=False)
    ]
    header = ["client", "feedback", "sold", "compared", "sold vs others", "p-value", "flagged"]
    return hr.table(rows, [*header, "sample"]) + notes(
        [
            *CLIENT_NOTES,
            ("sample", f"fewer than {minimum:,} compared sales (params.yaml clients.min_rows)"),
        ]
    )


def drift_notes(warn: float, alert: float) -> str:
    return notes(
        [
            (
                "PSI",
                "population stability index of the recent inputs against the champion's "
                "training data: 0 is the same distribution, the more the bins' shares moved "
                "the higher",
            ),
            (
                "level",
                f"ok up to {warn}, warn above {warn}, alert above {alert} (a retrain reason)",
            ),
        ]
    )


def distributions(bins: pd.DataFrame, feature: str, psi: float) -> str:
    """One drifting feature: its share of rows per bin in training and recently."""
    part = bins[bins["feature"] == feature]
    labels = [str(b) for b in part["bin"]]
    chart = hr.paired_barh(
        labels,
        [("training", 100 * part["training"]), ("recent", 100 * part["recent"])],
        f"{feature}: PSI {psi:.2f}",
        "% of rows",
    )
    rows = [
        (b, pct(t), pct(r), pct(r - t, signed=True).replace("%", " pp"))
        for b, t, r in zip(labels, part["training"], part["recent"], strict=True)
    ]
    return chart + hr.table(rows, [feature, "training", "recent", "change"])
