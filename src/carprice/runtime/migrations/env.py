"""Alembic's environment: migrate the store on the connection, with the table prefix and the
version table that carprice.runtime.store_schema.Database.upgrade hands over."""

from alembic import context

config = context.config
context.configure(
    connection=config.attributes["connection"],
    version_table=config.attributes["version_table"],
)
with context.begin_transaction():
    context.run_migrations()
