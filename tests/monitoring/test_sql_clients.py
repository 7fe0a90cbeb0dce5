"""The client review in SQL equals the in-memory (pandas) review on the same store."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from carprice.data.feedback import read_log
from carprice.monitor.clients import COLUMNS, ClientCheck, client_table
from carprice.monitor.sql_clients import review_store_clients, store_client_table
from tests.monitoring import test_sql_monitor
from tests.monitoring.test_sql_monitor import START, assert_same, prediction
from tests.serving.conftest import pg_url  # noqa: F401 (fixture)

store = test_sql_monitor.store  # the same fixture: a fresh store on SQLite and on PostgreSQL

HONEST = ["honest-a", "honest-b", "honest-c", None]  # None: an anonymous post
LOOSE = ClientCheck(min_rows=5, min_reference_rows=2, max_log_shift=0.05, max_p_value=0.05)
SINCE = dt.date(2026, 5, 5)  # drops the first 21 estimates


def reported(i: int) -> dt.datetime:
    """When the i-th estimate's sale was reported (in order, a minute apart)."""
    return START + dt.timedelta(days=30, minutes=i)


def fill(store, n: int = 500, seed: int = 3) -> None:
    """Log `n` estimates and their sales: three honest clients and anonymous posts near the
    estimate, `flood` at 1.6x on VW Golfs, `low` at 0.8x anywhere, `rare` once on a car the
    others sold exactly `min_reference_rows` (5) times; corrected sales, a second client on the
    same car, withdrawals, cars without a model and unpriced estimates."""
    rng = np.random.default_rng(seed)
    rows = [prediction(rng, i) for i in range(n)]
    for i, row in enumerate(rows):
        if i < 90:
            row["inputs"].update(make="VW", model="Golf")
        elif i < 96:  # a rare car: 5 sales by others, the least a reference may hold
            row["inputs"].update(make="Kia", model="Ceed")
        elif i % 37 == 0:
            del row["inputs"]["model"]
    store.log_estimates_once(rows)
    for i, row in enumerate(rows):
        pid, price = row["prediction_id"], row["price"] or 10_000.0
        honest = HONEST[i % 4]
        if i < 45:
            client, factor = "flood", 1.6
        elif i == 90:  # judged on the rare car alone: against its 5 sales, not all Kias
            client, factor = "rare", 1.0
        elif i % 9 == 0:
            client, factor = "low", 0.8
        else:
            client, factor = honest, float(rng.lognormal(0.0, 0.1))
        sold = round(price * factor, 2)
        store.add_feedback(pid, sold_price=sold, received_at=reported(i), client=client)
        if i % 5 == 0:  # a corrected sale: the client's latest one counts
            store.add_feedback(pid, sold_price=sold * 0.95, received_at=reported(i), client=client)
        if i % 7 == 0 and client != honest:  # the same car sold by a second client
            store.add_feedback(pid, sold_price=price, received_at=reported(i), client=honest)
        if i % 11 == 0:
            store.add_feedback(pid, event="withdrawn", client=honest)


def records(table: pd.DataFrame) -> list[dict]:
    return table.astype(object).to_dict("records")


@pytest.mark.parametrize(
    ("since", "loose"), [(None, False), (None, True), (SINCE, True)], ids=["all", "loose", "since"]
)
def test_sql_client_table_equals_the_in_memory_table(store, params, since, loose):
    """Volume, compared sales, shift, p-value and flag from SQL are the pandas review's, with
    and without `--since`, when one client or several (judged again without them) are flagged."""
    fill(store)
    check = LOOSE if loose else ClientCheck.from_params(params["clients"])
    predictions, feedback = read_log(store, since)
    expected = client_table(predictions, feedback, check)
    actual = store_client_table(store, check, since=since)
    assert_same(records(actual), records(expected))
    flagged = set(expected.loc[expected["flagged"], "client"])
    assert "flood" in flagged and len(flagged) >= (2 if loose else 1)
    assert expected["compared"].sum() > 200  # the comparison is not vacuous


def test_a_released_client_is_judged_on_its_later_sales_alone(store):
    """After a release, only the sales reported after it count, in SQL as in memory."""
    fill(store)
    released = {"flood": pd.Timestamp(reported(30)), "low": pd.Timestamp(reported(10_000))}
    predictions, feedback = read_log(store)
    expected = client_table(predictions, feedback, LOOSE, released)
    actual = store_client_table(store, LOOSE, released)
    assert_same(records(actual), records(expected))
    rows = expected.set_index("client")
    assert rows.loc["flood", "compared"] == 14 and rows.loc["low", "compared"] == 0


def test_the_sql_review_holds_a_flagged_client_once(store, params):
    """The monitor's review puts both shifted clients on hold, and does not hold them again."""
    fill(store)
    check = ClientCheck.from_params(params["clients"])
    table, newly = review_store_clients(store, check)
    assert sorted(newly) == ["flood", "low"]
    assert sorted(h["client"] for h in store.held_clients()) == ["flood", "low"]
    held = table.set_index("client")["held"].to_dict()
    assert held == {name: "hold" if name in newly else "" for name in held}
    again, newly = review_store_clients(store, check)
    assert newly == [] and len(store.held_clients()) == 2
    assert_same(records(again), records(table))


def test_an_empty_store_gives_an_empty_table(store):
    empty = store_client_table(store, ClientCheck())
    assert empty.empty and list(empty.columns) == COLUMNS
