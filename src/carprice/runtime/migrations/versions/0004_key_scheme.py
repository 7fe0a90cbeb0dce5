"""Clients carry their key's hash scheme: `scrypt` (every key made before this revision) or
`hmac` (HMAC-SHA256 under the server's pepper, runtime/clients.py). A migration cannot re-hash
a key without its secret, so the old keys keep working under `scrypt` until re-issued.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    prefix = context.config.attributes["prefix"]
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(f"{prefix}clients")}
    if "key_scheme" in have:  # a store from before revisions, made by a later release's code
        return
    op.add_column(
        f"{prefix}clients",
        sa.Column("key_scheme", sa.String(8), nullable=False, server_default="scrypt"),
    )
