"""Sold feedback as training rows, joined to the inputs the service logged for the same car.

Feedback is input from outside, so before a sold price becomes a training row it must be
plausible next to the estimate the service logged for the same car: a ratio outside the bounds
of params.yaml `feedback` quarantines the row (reason `implausible_sold_price`) instead of
training on it. The rows that pass then meet gate 1 like any listing.

A sale of a car the model did not price (status other than `ok`) has no estimate to check
it against, so it is quarantined (`no_estimate`): otherwise a client could price ten listings
of an unsupported model and post made-up sales until the model is supported, priced its way.

Only sales train (a `sold` event, or a post of plain values with a sold price: the log
queries' one definition of a sale, `runtime.logqueries.base`), once per prediction and client
with that client's latest sale: one client's sale never replaces another's. Listing-price
changes and withdrawals describe the seller, not the market price, and never become a target.

No one client makes a make|model's feedback: past `client_rows_uncapped` rows, a client's
sales of a make|model train only while they are at most `max_client_share` of that make|model's
feedback rows; the rest (its latest posts first) are quarantined (`client_share`). Clients with
the `feedback:all` scope (the marketplace's own sales pipeline) are not capped.

Feedback from a client on hold (flagged by the monitor, or dropped by an operator: the store's
`client_holds`) stays in the store but is held out of the training rows until it is released.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from carprice.config import from_section
from carprice.data.schema import CANONICAL_COLUMNS
from carprice.runtime.clients import ALL_FEEDBACK
from carprice.runtime.listing import API_TO_CANONICAL
from carprice.runtime.logqueries.base import ANONYMOUS
from carprice.runtime.logqueries.feedback import sales_per_client, training_sales
from carprice.runtime.store import Store

FEEDBACK_SOURCE = "feedback"
IMPLAUSIBLE = "implausible_sold_price"
NO_ESTIMATE = "no_estimate"
CLIENT_SHARE = "client_share"
# what `training_sales` returns of each sale
SALE_COLUMNS = ["prediction_id", "inputs", "status", "price", "sold_price", "client", "feedback_id"]


@dataclass(frozen=True)
class FeedbackCheck:
    """Plausibility bounds of a sold price against the logged estimate (params.yaml `feedback`)."""

    sold_to_estimate_min: float = 0.4
    sold_to_estimate_max: float = 2.5
    # A sale of a car the model did not price has no estimate to compare with: True
    # quarantines it (`no_estimate`); False lets it on to gate 1 like any listing.
    quarantine_without_estimate: bool = True
    # One client's sales of a make|model beyond `client_rows_uncapped` train only while they
    # are at most this share of the make|model's feedback rows (1.0: no cap).
    max_client_share: float = 0.5
    client_rows_uncapped: int = 5

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> FeedbackCheck:
        check = from_section(cls, section, "feedback")
        if not 0 < check.sold_to_estimate_min <= 1 <= check.sold_to_estimate_max:
            raise ValueError("feedback bounds must satisfy 0 < min <= 1 <= max")
        if not 0 < check.max_client_share <= 1 or check.client_rows_uncapped < 0:
            raise ValueError("feedback: max_client_share in (0, 1], client_rows_uncapped >= 0")
        return check

    def allowed(self, others: int) -> int:
        """Rows one client may keep of a make|model whose other clients reported `others`."""
        if self.max_client_share >= 1:
            return 2**62
        share = self.max_client_share / (1 - self.max_client_share)
        return max(self.client_rows_uncapped, int(share * others + 1e-9))


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


def _over_share(rows: pd.DataFrame, clients: pd.Series, check: FeedbackCheck, exempt) -> pd.Series:
    """True on the rows past their client's share of a make|model (see the module docstring);
    a capped client keeps its earliest posts."""
    if rows.empty:
        return pd.Series(False, index=rows.index)
    segment = rows["make"].astype(str) + "|" + rows["model"].astype(str)
    total = segment.map(segment.value_counts())
    own = pd.Series(1, index=rows.index).groupby([segment, clients]).transform("sum")
    rank = pd.Series(1, index=rows.index).groupby([segment, clients]).cumsum()
    allowed = [check.allowed(int(o)) for o in (total - own)]
    return (rank > allowed) & ~clients.isin(exempt)


def feedback_rows(store: Store, check: FeedbackCheck | None = None) -> FeedbackRows:
    """Return the sold predictions as training rows and quarantined rows; none is lost (the
    sales of clients on hold are counted in `held_out`)."""
    check = check or FeedbackCheck()
    columns = [*CANONICAL_COLUMNS, "source", "prediction_id"]
    on_hold = {h["client"] for h in store.held_clients()}
    held = sales_per_client(store, on_hold)
    joined = pd.DataFrame(training_sales(store, excluding=on_hold), columns=SALE_COLUMNS)
    if joined.empty:
        empty = pd.DataFrame(columns=columns)
        return FeedbackRows(empty, empty.assign(estimate=[], reasons=[]), held)
    inputs = pd.json_normalize(joined["inputs"].tolist()).rename(columns=API_TO_CANONICAL)
    rows = inputs.reindex(columns=list(CANONICAL_COLUMNS))
    rows["price"] = joined["sold_price"].round().astype("Int64").to_numpy()
    rows["source"] = FEEDBACK_SOURCE
    rows["prediction_id"] = joined["prediction_id"].to_numpy()
    estimate = pd.to_numeric(joined["price"], errors="coerce").to_numpy(dtype=float, copy=True)
    unpriced = pd.isna(estimate) | (joined["status"] != "ok").to_numpy()
    estimate[unpriced] = float("nan")
    ratio = joined["sold_price"].to_numpy(dtype=float) / estimate
    reasons = pd.Series("", index=rows.index, dtype=object)
    if check.quarantine_without_estimate:
        reasons[unpriced] = NO_ESTIMATE
    outside = ~unpriced & ~(
        (ratio >= check.sold_to_estimate_min) & (ratio <= check.sold_to_estimate_max)
    )
    reasons[outside] = IMPLAUSIBLE
    clients = joined["client"].fillna(ANONYMOUS)
    exempt = {c["name"] for c in store.list_clients() if ALL_FEEDBACK in c["scopes"].split(",")}
    order = joined["feedback_id"].argsort(kind="stable").to_numpy()
    candidates = rows.index[order][(reasons == "").to_numpy()[order]]
    over = _over_share(rows.loc[candidates], clients.loc[candidates], check, exempt)
    reasons[over[over].index] = CLIENT_SHARE
    bad = (reasons != "").to_numpy()
    quarantine = rows[bad].assign(estimate=estimate[bad], reasons=reasons[bad].to_numpy())
    return FeedbackRows(
        rows[~bad].sort_values("prediction_id", ignore_index=True),
        quarantine.sort_values("prediction_id", ignore_index=True),
        held,
    )
