"""The A/B experiment record: the `experiments` table, and the experiment each estimate was
served in (`predictions.experiment_id`, indexed; NULL on earlier rows: in no experiment); the
seller's opinion on an estimate (`feedback.opinion` and `feedback.comment`; NULL on earlier
rows).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Like 0001, each step only adds what the store lacks: a store from before revisions whose
    # tables were made by a later release's code already has some of it.
    prefix = context.config.attributes["prefix"]
    inspector = sa.inspect(op.get_bind())
    log = f"{prefix}predictions"
    if "experiment_id" not in {c["name"] for c in inspector.get_columns(log)}:
        op.add_column(log, sa.Column("experiment_id", sa.String(32)))
        op.create_index(f"ix_{log}_experiment_id", log, ["experiment_id"])
    have = {c["name"] for c in inspector.get_columns(f"{prefix}feedback")}
    for column, type_ in (("opinion", sa.String(16)), ("comment", sa.Text)):
        if column not in have:
            op.add_column(f"{prefix}feedback", sa.Column(column, type_))
    if f"{prefix}experiments" in inspector.get_table_names():
        return
    op.create_table(
        f"{prefix}experiments",
        sa.Column("experiment_id", sa.String(32), primary_key=True),
        sa.Column("champion_version", sa.String(200), nullable=False),
        sa.Column("challenger_version", sa.String(200), nullable=False),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("stopped_at", TIME),
        sa.Column("plan", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
    )
