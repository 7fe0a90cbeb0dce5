"""Read the prediction log and feedback as frames; turn sold feedback into training rows."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from carprice.schema import CANONICAL_COLUMNS
from carprice.store import Store

INPUT_TO_CANONICAL = {"offer_type": "offerType"}
FEEDBACK_SOURCE = "feedback"


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


def training_rows(store: Store) -> pd.DataFrame:
    """Sold feedback joined to the logged inputs: one canonical row per sold prediction.

    The sold price is the target. A prediction with several feedback posts counts once, with its
    latest sold price; rows carry `source = "feedback"` and their `prediction_id`.
    """
    predictions, feedback = read_log(store)
    fb = feedback.dropna(subset=["sold_price"]).sort_values("feedback_id")
    fb = fb.drop_duplicates("prediction_id", keep="last")
    joined = predictions[["prediction_id", "inputs"]].merge(
        fb[["prediction_id", "sold_price"]], on="prediction_id"
    )
    if joined.empty:
        return pd.DataFrame(columns=[*CANONICAL_COLUMNS, "source", "prediction_id"])
    inputs = pd.json_normalize(joined["inputs"].tolist()).rename(columns=INPUT_TO_CANONICAL)
    rows = inputs.reindex(columns=list(CANONICAL_COLUMNS))
    rows["price"] = joined["sold_price"].round().astype("Int64").to_numpy()
    rows["source"] = FEEDBACK_SOURCE
    rows["prediction_id"] = joined["prediction_id"].to_numpy()
    return rows.sort_values("prediction_id", ignore_index=True)
