"""Feedback per client: its volume, and a flag on a client whose sold prices sit apart.

Sold prices become training data, so one client reporting a segment's sales at, say, 1.8x the
estimate (inside the plausibility band of params.yaml `feedback`) could pull the next model.
Each sold price is read as r = log(sold price / logged estimate) and compared with the median r
that *other* clients reported on the same car: the same make|model when the others reported at
least `min_reference_rows` sales of it, else the same make, else the sale is not compared.

A client's shift is the median of those differences, and a sign test (how many differences lie
above zero, against a fair coin) gives its p-value. A client with at least `min_rows` compared
sales, p <= `max_p_value` and |shift| >= `max_log_shift` (params.yaml `clients`) is flagged: the
test decides, the shift only keeps a difference too small to matter from flagging. At the
defaults (p <= 0.001, |shift| >= 0.05) a client reporting a steady 10% high (shift 0.095) is
flagged within a few dozen sales compared against others' with the usual ~10% noise.
A big flooder also moves the others' medians, so the flagged client furthest from the estimates
is set aside and the rest judged again without it, until no one else is flagged. Anonymous
feedback is a reference for the others but is not judged: there is no name to hold.

Colluding keys that make up most of a segment set its reference themselves, so the review also
lists the make|models with at least `min_rows` sales where one named client reported more than
`max_segment_share` of them (`dominated_segments`); training caps such a client's share
(params.yaml `feedback`, data/feedback.py).

The sales, the volume and the medians are queried in the database
(`runtime.logqueries.clients`); this module holds the rules: the check, the sign test, the
judging rounds and the holds.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from scipy.stats import binomtest

from carprice.config import from_section
from carprice.runtime.logqueries import clients as queries
from carprice.runtime.store import HOLD, Store

COLUMNS = ["client", "feedback", "sold", "compared", "log_shift", "p_value", "flagged"]
SEGMENT_COLUMNS = ["make", "model", "client", "sales", "segment_sales", "share"]


@dataclass(frozen=True)
class ClientCheck:
    """When a client's sold prices count as apart from everyone else's (params.yaml `clients`)."""

    min_rows: int = 30  # compared sales a client needs before it is judged
    min_reference_rows: int = 5  # other clients' sales of a car needed to compare against
    max_log_shift: float = 0.05  # |median log-ratio difference| from which a client is apart
    max_p_value: float = 0.001  # ... when the sign test is at least this sure
    max_segment_share: float = 0.5  # one client's share of a make|model's sales that is flagged

    @classmethod
    def from_params(cls, section: dict[str, Any] | None) -> ClientCheck:
        check = from_section(cls, section, "clients")
        if check.min_rows < 1 or check.min_reference_rows < 1:
            raise ValueError("clients: min_rows and min_reference_rows must be at least 1")
        if check.max_log_shift <= 0 or not 0 < check.max_p_value < 1:
            raise ValueError("clients: max_log_shift must be > 0 and max_p_value in (0, 1)")
        if not 0 < check.max_segment_share <= 1:
            raise ValueError("clients: max_segment_share must be in (0, 1]")
        return check


def sign_test(above: int, n: int) -> float:
    """Two-sided p-value of `above` successes in `n` fair coin flips (scipy's exact binomial)."""
    return float(binomtest(above, n).pvalue) if n else 1.0


def stats_row(
    n: int, shift: float, above: int, nonzero: int, distance: float, check: ClientCheck
) -> dict:
    """The judged row from counts: `n` differences with median `shift`, `above` of them > 0
    and `nonzero` != 0; `distance` is |median r| of the client's own sales."""
    p = sign_test(above, nonzero)
    flagged = n >= check.min_rows and abs(shift) >= check.max_log_shift and p <= check.max_p_value
    return {
        "compared": n,
        "log_shift": shift,
        "p_value": p,
        "flagged": bool(flagged),
        "distance": distance,
    }


def judge_all(names: list[str], judge: Callable[[str, set[str]], dict]) -> dict[str, dict]:
    """Judge each named client against the others, setting the most extreme flagged one aside
    (out of every reference) and judging the rest again, until no one else is flagged.

    `judge(name, aside)` returns a `stats_row` for `name` against everyone not in `aside`.
    """
    judged: dict[str, dict] = {}
    while True:
        aside = set(judged)
        found = {name: judge(name, aside) for name in names if name not in judged}
        flagged = [name for name, row in found.items() if row["flagged"]]
        if not flagged:
            return judged | found
        worst = max(flagged, key=lambda name: found[name]["distance"])
        judged[worst] = found[worst]


def assemble(volume: pd.DataFrame, judged: dict[str, dict]) -> pd.DataFrame:
    """The client table from the volume (index client; feedback, sold) and the judged rows."""
    table = volume.rename_axis("client").reset_index()
    stats = pd.DataFrame.from_dict(judged, orient="index")
    stats = stats.reindex(columns=["compared", "log_shift", "p_value", "flagged"])
    table = table.merge(stats, left_on="client", right_index=True, how="left")
    table["compared"] = table["compared"].fillna(0).astype(int)
    table["flagged"] = table["flagged"].eq(True)  # not judged: not flagged
    table[["feedback", "sold"]] = table[["feedback", "sold"]].astype(int)
    return table.reindex(columns=COLUMNS).sort_values(
        ["feedback", "client"], ascending=[False, True], ignore_index=True
    )


def client_table(
    store: Store,
    check: ClientCheck,
    released: dict[str, pd.Timestamp] | None = None,
    since: dt.date | None = None,
) -> pd.DataFrame:
    """Feedback volume per client (on predictions logged from `since` on) and the flag (see
    the module docstring), largest first. A client an operator released is judged only on the
    sales it reported after the release."""
    released = released or {}
    volume = queries.volume(store, since)
    if not volume:
        return pd.DataFrame(columns=COLUMNS)
    counts = pd.DataFrame(volume, columns=["client", "feedback", "sold"]).set_index("client")
    with queries.client_sales(store, since) as sales:

        def judge(name: str, aside: set[str]) -> dict:
            after = released[name].to_pydatetime() if name in released else None
            n, shift, above, nonzero, own = sales.judge(
                name, aside, after, check.min_reference_rows
            )
            shift = float("nan") if shift is None else shift
            distance = 0.0 if own is None else abs(own)  # no sales of its own left: 0
            return stats_row(n, shift, above, nonzero, distance, check)

        judged = judge_all(sales.names(), judge)
    return assemble(counts, judged)


def dominated_segments(
    store: Store, check: ClientCheck, since: dt.date | None = None
) -> pd.DataFrame:
    """The make|models with at least `min_rows` sales where one named client reported more than
    `max_segment_share` of them, largest share first."""
    found = pd.DataFrame(
        queries.segment_sales(store, since), columns=["make", "model", "client", "sales"]
    )
    if found.empty:
        return pd.DataFrame(columns=SEGMENT_COLUMNS)
    found["segment_sales"] = found.groupby(["make", "model"])["sales"].transform("sum")
    found["share"] = found["sales"] / found["segment_sales"]
    flagged = found[
        (found["client"] != queries.ANONYMOUS)
        & (found["segment_sales"] >= check.min_rows)
        & (found["share"] > check.max_segment_share)
    ]
    return flagged.sort_values(["share", "make", "model"], ascending=[False, True, True])[
        SEGMENT_COLUMNS
    ].reset_index(drop=True)


def review_clients(
    store: Store, check: ClientCheck, since: dt.date | None = None, hold: bool = True
) -> tuple[pd.DataFrame, list[str]]:
    """Judge every client; put a newly flagged one on hold (see `review`)."""
    return review(store, lambda released: client_table(store, check, released, since), check, hold)


def hold_reason(row, check: ClientCheck) -> str:
    """The numbers behind a flag, as the hold's reason."""
    return (
        f"monitor: {row.compared} sold prices sit {row.log_shift:+.3f} in log(sold/estimate) "
        f"(x{math.exp(row.log_shift):.2f}) from other clients' on the same cars, sign test "
        f"p={row.p_value:.1e} (flag at |shift| >= {check.max_log_shift}, "
        f"p <= {check.max_p_value}, {check.min_rows}+ sales)"
    )


def review(
    store: Store,
    table_of: Callable[[dict[str, pd.Timestamp]], pd.DataFrame],
    check: ClientCheck,
    hold: bool = True,
) -> tuple[pd.DataFrame, list[str]]:
    """Judge every client with `table_of(released times)`; put a newly flagged one on hold
    (unless `hold` is False).

    Returns the client table with its `held` column (the open hold's kind, or "") and the names
    put on hold now. A client already held is not held twice.
    """
    holds = store.held_clients(include_released=True)
    open_holds = {h["client"]: h["kind"] for h in holds if h["released_at"] is None}
    released: dict[str, pd.Timestamp] = {}
    for h in holds:
        if h["released_at"] is not None and h["client"] not in open_holds:
            at = pd.Timestamp(h["released_at"])
            at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
            released[h["client"]] = max(at, released.get(h["client"], at))
    table = table_of(released)
    newly = []
    for row in table[table["flagged"]].itertuples():
        if hold and row.client not in open_holds:
            store.hold_client(row.client, hold_reason(row, check), kind=HOLD)
            open_holds[row.client] = HOLD
            newly.append(row.client)
    table["held"] = [open_holds.get(name, "") for name in table["client"]]
    return table, newly
