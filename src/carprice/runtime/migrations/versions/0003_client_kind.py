"""Clients carry a kind: `market` (every client made before this revision) or `synthetic`
(load tests, gate 3, probes), so the monitor and training can leave synthetic traffic out.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    prefix = context.config.attributes["prefix"]
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(f"{prefix}clients")}
    if "kind" in have:  # a store from before revisions, made by a later release's code
        return
    op.add_column(
        f"{prefix}clients",
        sa.Column("kind", sa.String(16), nullable=False, server_default="market"),
    )
