"""The schema of the last release without migrations; a store from before it gains what it lacks.

Before revisions were kept, each start added what an older store lacked: the feedback dedupe
key, the client columns, the seller's events, the A/B arm, and the holds, clients and quota
tables. This revision does the same once, so a store made by any earlier release reaches that
schema; earlier rows keep NULL in the new columns (an anonymous client, a post of plain values,
the champion's arm). A table that exists is left as it is (a PostgreSQL log from before the
day partitions stays one table). There is no way down.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0001"
down_revision = None

CLIENT, STATUS = sa.String(200), sa.String(16)
TIME = sa.DateTime(timezone=True)
ADDED = {  # the columns added since the first release, by table
    "predictions": [("client", CLIENT), ("arm", STATUS)],
    "feedback": [("dedupe_key", sa.String(64)), ("client", CLIENT), ("event", STATUS)]
    + [("event_at", TIME)],
}


def upgrade() -> None:
    prefix = context.config.attributes["prefix"]
    inspector = sa.inspect(op.get_bind())
    for table, columns in ADDED.items():
        name = f"{prefix}{table}"
        have = {c["name"] for c in inspector.get_columns(name)}
        for column, type_ in columns:
            if column not in have:
                op.add_column(name, sa.Column(column, type_))
                if column == "dedupe_key":
                    op.create_index(f"{name}_dedupe_key", name, ["dedupe_key"], unique=True)
    tables = set(inspector.get_table_names())
    if f"{prefix}client_holds" not in tables:
        op.create_table(
            f"{prefix}client_holds",
            sa.Column("hold_id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("client", CLIENT, nullable=False, index=True),
            sa.Column("kind", sa.String(8), nullable=False),
            sa.Column("held_at", TIME, nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("released_at", TIME),
        )
    if f"{prefix}clients" not in tables:
        op.create_table(
            f"{prefix}clients",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("key_id", sa.String(16), nullable=False, unique=True),
            sa.Column("key_salt", sa.String(32), nullable=False),
            sa.Column("key_hash", sa.String(64), nullable=False),
            sa.Column("scopes", sa.String(200), nullable=False),
            sa.Column("estimates_per_minute", sa.Integer),
            sa.Column("feedback_per_day", sa.Integer),
            sa.Column("revoked", sa.Boolean, nullable=False),
            sa.Column("created_at", TIME, nullable=False),
            sa.Column("revoked_at", TIME),
        )
    if f"{prefix}quota_counters" not in tables:
        op.create_table(
            f"{prefix}quota_counters",
            sa.Column("client", sa.String(64), primary_key=True),
            sa.Column("scope", STATUS, primary_key=True),
            sa.Column("window_start", sa.BigInteger, primary_key=True),
            sa.Column("count", sa.Integer, nullable=False),
        )
