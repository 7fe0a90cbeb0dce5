"""Read the prediction log and feedback as frames; turn sold feedback into training rows.

Feedback is input from outside, so before a sold price becomes a training row it must be
plausible next to the estimate the service logged for the same car: a ratio outside the bounds
of params.yaml `feedback` quarantines the row (reason `implausible_sold_price`) instead of
training on it. The rows that pass then meet gate 1 like any listing.

Only sales train: a `sold` event, or a post of plain values with a sold price. Listing-price
changes and withdrawals describe the seller, not the market price, and never become a target.

Feedback from a client on hold (flagged by the monitor, or dropped by an operator: the store's
`client_holds`) stays in the store but is held out of the training rows until it is released.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa

from carprice.config import from_section
from carprice.data.schema import CANONICAL_COLUMNS
from carprice.runtime.listing import API_TO_CANONICAL
from carprice.runtime.store import Store

FEEDBACK_SOURCE = "feedback"
IMPLAUSIBLE = "implausible_sold_price"
NO_ESTIMATE = "no_estimate"


@dataclass(frozen=True)
class FeedbackCheck:
    """Plausibility bounds of a sold price against the logged estimate (params.yaml `feedback`)."""

    sold_to_estimate_min: float = 0.4
    sold_to_estimate_max: float = 2.5
    # A sale of a car the model did not price has no estimate to compare with: by default it
    # goes on to gate 1 (which judges it like any listing); True quarantines it (`no_estimate`).
    quarantine_without_estimate: bool = False

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> FeedbackCheck:
        check = from_section(cls, section, "feedback")
        if not 0 < check.sold_to_estimate_min <= 1 <= check.sold_to_estimate_max:
            raise ValueError("feedback bounds must satisfy 0 < min <= 1 <= max")
        return check


@dataclass
class FeedbackRows:
    """Sold feedback split into training rows and quarantined rows (with `reasons`); `held_out`
    counts the sold feedback rows of each client on hold, which neither of them holds."""

    rows: pd.DataFrame
    quarantine: pd.DataFrame
    held_out: dict[str, int] = field(default_factory=dict)

    @property
    def rows_in(self) -> int:
        return len(self.rows) + len(self.quarantine)


def split_held(feedback: pd.DataFrame, held: set[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Split off the sold feedback of held clients: (the rest, sold rows held out per client)."""
    if "client" not in feedback or not held:
        return feedback, {}
    mask = feedback["client"].isin(held)
    counts = feedback[mask & feedback["sold_price"].notna()].groupby("client").size()
    return feedback[~mask], {str(k): int(v) for k, v in counts.items()}


def sales(feedback: pd.DataFrame) -> pd.DataFrame:
    """Return the feedback rows that report a sale: event `sold`, or no event and a sold price."""
    event = feedback["event"] if "event" in feedback else pd.Series(None, index=feedback.index)
    return feedback[(event.isna() | (event == "sold")) & feedback["sold_price"].notna()]


def client_feedback_counts(store: Store, client: str) -> tuple[int, int]:
    """Return (feedback rows, rows with a sold price) a client reported."""
    f = store.feedback
    query = sa.select(sa.func.count(), sa.func.count(f.c.sold_price)).where(f.c.client == client)
    with store.engine.connect() as conn:
        posts, sold = conn.execute(query).one()
    return int(posts), int(sold)


def read_log(store: Store, since: dt.date | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (predictions, feedback) as frames, optionally from a date on."""
    p, f = store.predictions, store.feedback
    query = sa.select(p)
    if since is not None:
        query = query.where(p.c.created_at >= dt.datetime.combine(since, dt.time(), dt.UTC))
    with store.engine.connect() as conn:
        predictions = pd.DataFrame(conn.execute(query).mappings().all(), columns=p.columns.keys())
        feedback = pd.DataFrame(
            conn.execute(sa.select(f)).mappings().all(), columns=f.columns.keys()
        )
    predictions["created_at"] = pd.to_datetime(predictions["created_at"], utc=True)
    if since is not None:
        feedback = feedback[feedback["prediction_id"].isin(predictions["prediction_id"])]
    return predictions, feedback.reset_index(drop=True)


def training_rows(store: Store, check: FeedbackCheck | None = None) -> pd.DataFrame:
    """Sold feedback joined to the logged inputs: one canonical row per plausible sale.

    The sold price is the target. A prediction with several feedback posts counts once, with its
    latest sold price; rows carry `source = "feedback"` and their `prediction_id`. Implausible
    sales are left out (`feedback_rows` returns them with their reasons).
    """
    return feedback_rows(store, check).rows


def feedback_rows(store: Store, check: FeedbackCheck | None = None) -> FeedbackRows:
    """Return the sold predictions as training rows and quarantined rows; none is lost (the
    sales of clients on hold are counted in `held_out`)."""
    check = check or FeedbackCheck()
    columns = [*CANONICAL_COLUMNS, "source", "prediction_id"]
    predictions, feedback = read_log(store)
    feedback, held = split_held(feedback, {h["client"] for h in store.held_clients()})
    fb = sales(feedback).sort_values("feedback_id")
    fb = fb.drop_duplicates("prediction_id", keep="last")
    joined = predictions[["prediction_id", "inputs", "price"]].merge(
        fb[["prediction_id", "sold_price"]], on="prediction_id"
    )
    if joined.empty:
        empty = pd.DataFrame(columns=columns)
        return FeedbackRows(empty, empty.assign(estimate=[], reasons=[]), held)
    inputs = pd.json_normalize(joined["inputs"].tolist()).rename(columns=API_TO_CANONICAL)
    rows = inputs.reindex(columns=list(CANONICAL_COLUMNS))
    rows["price"] = joined["sold_price"].round().astype("Int64").to_numpy()
    rows["source"] = FEEDBACK_SOURCE
    rows["prediction_id"] = joined["prediction_id"].to_numpy()
    estimate = pd.to_numeric(joined["price"], errors="coerce").to_numpy(dtype=float)
    ratio = joined["sold_price"].to_numpy(dtype=float) / estimate
    reasons = pd.Series("", index=rows.index, dtype=object)
    if check.quarantine_without_estimate:
        reasons[pd.isna(estimate)] = NO_ESTIMATE
    outside = ~pd.isna(estimate) & ~(
        (ratio >= check.sold_to_estimate_min) & (ratio <= check.sold_to_estimate_max)
    )
    reasons[outside] = IMPLAUSIBLE
    bad = (reasons != "").to_numpy()
    quarantine = rows[bad].assign(estimate=estimate[bad], reasons=reasons[bad].to_numpy())
    return FeedbackRows(
        rows[~bad].sort_values("prediction_id", ignore_index=True),
        quarantine.sort_values("prediction_id", ignore_index=True),
        held,
    )
