"""The prediction-log and feedback tables (SQLAlchemy Core; SQLite and PostgreSQL).

predictions   one row per estimate: id (time-ordered), request id, time (UTC), model version,
              inputs (JSON), status, price, interval, rating, reason, latency, and the shadow
              challenger's version, status, price, interval or error
feedback      listing price, sold price and sold date reported against a prediction; the
              dedupe key (sha256 of those values) makes a repeated post one record
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def tables(prefix: str = "") -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """Return the metadata and both tables, their names prefixed (tests share one database)."""
    meta = sa.MetaData()
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    predictions = sa.Table(
        f"{prefix}predictions",
        meta,
        sa.Column("prediction_id", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(32), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("inputs", json_type, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("price", sa.Float),
        sa.Column("price_low", sa.Float),
        sa.Column("price_high", sa.Float),
        sa.Column("price_rating", sa.String(16)),
        sa.Column("reason", sa.Text),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("challenger_version", sa.String(200)),
        sa.Column("challenger_status", sa.String(16)),
        sa.Column("challenger_price", sa.Float),
        sa.Column("challenger_price_low", sa.Float),
        sa.Column("challenger_price_high", sa.Float),
        sa.Column("challenger_error", sa.Text),
    )
    feedback = sa.Table(
        f"{prefix}feedback",
        meta,
        sa.Column("feedback_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "prediction_id",
            sa.String(32),
            sa.ForeignKey(predictions.c.prediction_id),
            nullable=False,
            index=True,
        ),
        sa.Column("listing_price", sa.Float),
        sa.Column("sold_price", sa.Float),
        sa.Column("sold_at", sa.Date),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dedupe_key", sa.String(64), unique=True),
    )
    return meta, predictions, feedback
