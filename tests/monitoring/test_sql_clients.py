"""The client review (its medians and counts in SQL) equals a small reference computed here
in pandas from the raw tables, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from carprice.monitor.client_review import (
    COLUMNS,
    ClientCheck,
    client_table,
    review_clients,
    sign_test,
)
from tests.monitoring import test_sql_monitor
from tests.monitoring.test_sql_monitor import START, assert_same, log_frames, prediction
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


def reference_table(store, check: ClientCheck, released=None, since=None) -> pd.DataFrame:
    """The client table from the raw rows: each client's latest sale per priced estimate as
    r = ln(sold / estimate) against the others' median r on the same make|model (else make),
    the most extreme flagged client set aside and the rest judged again."""
    released = released or {}
    p, f = log_frames(store, since)
    f = f[f["prediction_id"].isin(p["prediction_id"])].assign(
        client=lambda x: x["client"].fillna("(anonymous)")
    )
    volume = f.groupby("client").agg(feedback=("client", "size"), sold=("sold_price", "count"))
    sales = f.dropna(subset=["sold_price"]).sort_values("feedback_id")
    sales = sales.drop_duplicates(["prediction_id", "client"], keep="last")
    ok = p.loc[(p["status"] == "ok") & (p["price"] > 0), ["prediction_id", "inputs", "price"]]
    j = ok.merge(sales[["prediction_id", "client", "sold_price", "received_at"]])
    j["make"] = [i.get("make") for i in j["inputs"]]
    j["model"] = [i.get("model") for i in j["inputs"]]
    j["r"] = np.log(j["sold_price"] / j["price"])
    j["received_at"] = pd.to_datetime(j["received_at"], utc=True)

    def judge(name: str, aside: set[str]) -> dict:
        mine = j[j["client"] == name]
        if name in released:
            mine = mine[mine["received_at"] > released[name]]
        others = j[~j["client"].isin(aside | {name})]
        ref = pd.Series(np.nan, index=mine.index)
        for keys in (["make", "model"], ["make"]):
            med = others.groupby(keys)["r"].agg(["median", "size"])
            med = med[med["size"] >= check.min_reference_rows]["median"].rename("ref")
            ref = ref.fillna(mine.join(med, on=keys)["ref"])
        diff = (mine["r"] - ref).dropna()
        shift = float(diff.median()) if len(diff) else float("nan")
        pv = sign_test(int((diff > 0).sum()), int((diff != 0).sum()))
        flagged = len(diff) >= check.min_rows and abs(shift) >= check.max_log_shift
        return {
            "compared": len(diff),
            "log_shift": shift,
            "p_value": pv,
            "flagged": bool(flagged and pv <= check.max_p_value),
            "distance": abs(mine["r"].median()) if len(mine) else 0.0,
        }

    judged: dict[str, dict] = {}
    names = sorted(set(j["client"]) - {"(anonymous)"})
    while True:
        found = {n: judge(n, set(judged)) for n in names if n not in judged}
        flagged = [n for n, row in found.items() if row["flagged"]]
        if not flagged:
            judged |= found
            break
        worst = max(flagged, key=lambda n: found[n]["distance"])
        judged[worst] = found[worst]
    rows = [
        {
            "client": c,
            "feedback": int(v.feedback),
            "sold": int(v.sold),
            **{k: np.nan for k in ("log_shift", "p_value")},
            "compared": 0,
            "flagged": False,
            **{k: x for k, x in judged.get(c, {}).items() if k != "distance"},
        }
        for c, v in volume.iterrows()
    ]
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["feedback", "client"], ascending=[False, True], ignore_index=True)


@pytest.mark.parametrize(
    ("since", "loose"), [(None, False), (None, True), (SINCE, True)], ids=["all", "loose", "since"]
)
def test_the_client_table_equals_a_reference_from_the_raw_log(store, params, since, loose):
    """Volume, compared sales, shift, p-value and flag are the reference's, with and without
    `--since`, when one client or several (judged again without them) are flagged."""
    fill(store)
    check = LOOSE if loose else ClientCheck.from_params(params["clients"])
    expected = reference_table(store, check, since=since)
    actual = client_table(store, check, since=since)
    assert_same(records(actual), records(expected))
    flagged = set(expected.loc[expected["flagged"], "client"])
    assert "flood" in flagged and len(flagged) >= (2 if loose else 1)
    assert expected["compared"].sum() > 200  # the comparison is not vacuous


def test_a_released_client_is_judged_on_its_later_sales_alone(store):
    """After a release, only the sales reported after it count."""
    fill(store)
    released = {"flood": pd.Timestamp(reported(30)), "low": pd.Timestamp(reported(10_000))}
    expected = reference_table(store, LOOSE, released)
    actual = client_table(store, LOOSE, released)
    assert_same(records(actual), records(expected))
    rows = expected.set_index("client")
    assert rows.loc["flood", "compared"] == 14 and rows.loc["low", "compared"] == 0


def test_the_review_holds_a_flagged_client_once(store, params):
    """The monitor's review puts both shifted clients on hold, and does not hold them again."""
    fill(store)
    check = ClientCheck.from_params(params["clients"])
    table, newly = review_clients(store, check)
    assert sorted(newly) == ["flood", "low"]
    assert sorted(h["client"] for h in store.held_clients()) == ["flood", "low"]
    held = table.set_index("client")["held"].to_dict()
    assert held == {name: "hold" if name in newly else "" for name in held}
    again, newly = review_clients(store, check)
    assert newly == [] and len(store.held_clients()) == 2
    assert_same(records(again), records(table))


def test_an_empty_store_gives_an_empty_table(store):
    empty = client_table(store, ClientCheck())
    assert empty.empty and list(empty.columns) == COLUMNS
