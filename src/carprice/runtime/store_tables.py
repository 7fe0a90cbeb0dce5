"""The prediction-log and feedback tables (SQLAlchemy Core; SQLite and PostgreSQL).

predictions   one row per estimate: id (time-ordered), request id, time (UTC), model version,
              inputs (JSON), status, price, interval, rating, reason, latency, and the shadow
              challenger's version, status, price, interval or error, the client that asked,
              the A/B arm that priced it and the experiment it was served in
feedback      listing price, sold price and sold date reported against a prediction; the
              dedupe key (sha256 of those values) makes a repeated post one record; the client
              that reported it; `event` (listing_price, sold, withdrawn) and `event_at` when
              the post named an event (NULL for posts of plain values); an `opinion` event's
              opinion and optional comment
client_holds  a client whose feedback is kept out of training: held (by the monitor or an
              operator) or dropped, with the reason, until `released_at` is set
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def tables(prefix: str = "", partitioned: bool = False) -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """Return the metadata and both tables, their names prefixed (tests share one database).

    `partitioned` gives PostgreSQL's layout by day (runtime/store_partitions.py): predictions
    partitioned by their time-ordered id, feedback without a foreign key to it.
    """
    meta = sa.MetaData()
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    by_day = {"postgresql_partition_by": "RANGE (prediction_id)"} if partitioned else {}
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
        sa.Column("client", sa.String(200)),  # the API key's client; NULL for anonymous calls
        sa.Column("arm", sa.String(16)),  # A/B arm: champion | challenger; NULL: champion
        sa.Column("experiment_id", sa.String(32), index=True),  # the A/B experiment's, or NULL
        **by_day,
    )
    key = [] if partitioned else [sa.ForeignKey(predictions.c.prediction_id)]
    feedback = sa.Table(
        f"{prefix}feedback",
        meta,
        sa.Column("feedback_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "prediction_id",
            sa.String(32),
            *key,
            nullable=False,
            index=True,
        ),
        sa.Column("listing_price", sa.Float),
        sa.Column("sold_price", sa.Float),
        sa.Column("sold_at", sa.Date),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dedupe_key", sa.String(64), unique=True),
        sa.Column("client", sa.String(200)),  # the API key's client; NULL for anonymous calls
        sa.Column("event", sa.String(16)),  # listing_price | sold | withdrawn; NULL: legacy post
        sa.Column("event_at", sa.DateTime(timezone=True)),  # when it happened (UTC)
        sa.Column("opinion", sa.String(16)),  # an opinion event: too_low | about_right | too_high
        sa.Column("comment", sa.Text),  # the seller's words with it (never read for training)
    )
    return meta, predictions, feedback


HOLD, DROP = "hold", "drop"  # kinds of client hold: under review, or dropped by an operator


def holds_table(meta: sa.MetaData, prefix: str = "") -> sa.Table:
    """Return the client-holds table on `meta`: one row per hold, open while released_at is NULL."""
    return sa.Table(
        f"{prefix}client_holds",
        meta,
        sa.Column("hold_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("client", sa.String(200), nullable=False, index=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True)),
    )


def client_tables(meta: sa.MetaData, prefix: str = "") -> tuple[sa.Table, sa.Table]:
    """Return the API clients table and their quota counters on `meta`.

    clients         one row per client: name, key id, the hash of the key's secret (never the key)
                    and its scheme: `hmac` (HMAC-SHA256 under the pepper, no salt) or `scrypt`
                    (salted, keys made before revision 0004), scopes (comma-separated), own quotas
                    (NULL: the service's default), revoked flag and times, and the kind: `market`
                    (a real caller) or `synthetic` (load tests, gate 3, probes: left out of the
                    monitor's judgement and of training)
    quota_counters  requests counted per client, scope and window (start in epoch seconds),
                    shared by every worker and replica
    """
    clients = sa.Table(
        f"{prefix}clients",
        meta,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(16), nullable=False, unique=True),
        sa.Column("key_salt", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("estimates_per_minute", sa.Integer),
        sa.Column("feedback_per_day", sa.Integer),
        sa.Column("revoked", sa.Boolean, nullable=False, default=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("kind", sa.String(16), nullable=False, server_default="market"),
        sa.Column("key_scheme", sa.String(8), nullable=False, server_default="scrypt"),
    )
    counters = sa.Table(
        f"{prefix}quota_counters",
        meta,
        sa.Column("client", sa.String(64), primary_key=True),
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("window_start", sa.BigInteger, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )
    return clients, counters


def experiments_table(meta: sa.MetaData, prefix: str = "") -> sa.Table:
    """Return the A/B experiments table on `meta`: one row per experiment, running while
    stopped_at is NULL; `plan` holds each metric's margin and reason, the minimum detectable
    effect and the planned listings per arm (carprice.monitor.experiment_plan)."""
    return sa.Table(
        f"{prefix}experiments",
        meta,
        sa.Column("experiment_id", sa.String(32), primary_key=True),
        sa.Column("champion_version", sa.String(200), nullable=False),
        sa.Column("challenger_version", sa.String(200), nullable=False),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True)),
        sa.Column("plan", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
    )
