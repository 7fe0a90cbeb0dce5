"""Least privilege on PostgreSQL: a migration role that owns the store's tables, and a runtime
role (the service's) that may add log, feedback and quota rows and read the rest, nothing more.

Two steps, both idempotent, both rendered here once:
- `roles_sql` (`carprice store roles`), a psql script an administrator runs once per database
  with the passwords as psql variables (`-v runtime_password=... -v migration_password=...`):
  it makes both LOGIN roles (or sets their passwords), lets only the migration role create
  in the schema, and lets the runtime role use it (and make the temporary table the spool's
  drain copies through);
- `grant_runtime` (`carprice store upgrade --runtime-role NAME`, as the migration role, after
  migrating): the runtime role's rights on each table, by its prefixed name, granted afresh.

What the service does with the store, and the right each needs:
- INSERT predictions (the estimate log, the spool's drain), feedback (a sale, an event) and
  quota_counters (the counter upsert), with the sequence of feedback's id;
- UPDATE quota_counters (the upsert adds to a count), DELETE quota_counters (old windows);
- SELECT predictions and feedback (a sale's prediction and owner, a repeated post's id),
  clients (key checks), client_holds, experiments (the A/B record) and the schema revision.
Not `clients` or `client_holds` writes, and no DDL: the service neither mints keys nor
releases holds, and day partitions are made by `carprice store maintain` as the migration
role (until then the DEFAULT partition takes the rows).
"""

from __future__ import annotations

import re

import sqlalchemy as sa

RUNTIME, MIGRATION = "carprice_runtime", "carprice_migrate"  # the roles' default names
ROLE_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_role(name: str) -> str:
    """Return a role name fit to put into SQL as it is, else raise ValueError."""
    if not ROLE_PATTERN.fullmatch(name):
        raise ValueError(
            f"role name {name!r}: up to 63 lower-case letters, digits and underscores, "
            "not starting with a digit"
        )
    return name


def roles_sql(runtime: str = RUNTIME, migration: str = MIGRATION, schema: str = "public") -> str:
    """Return the psql script that makes both roles (see the module's text)."""
    runtime, migration, schema = check_role(runtime), check_role(migration), check_role(schema)
    lines = [
        "-- The store's two roles (carprice store roles). Run once per database as an",
        "-- administrator: psql -v ON_ERROR_STOP=1 -v runtime_password=... \\",
        "--   -v migration_password=... -f roles.sql",
    ]
    for role, password in ((migration, "migration_password"), (runtime, "runtime_password")):
        lines += [
            f"SELECT 'CREATE ROLE {role}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_roles WHERE rolname = '{role}') \\gexec",
            f"ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS "
            f"PASSWORD :'{password}';",
        ]
    lines += [
        f"SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO {migration}, {runtime}', "
        "current_database()) \\gexec",
        f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC;",
        f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {migration};",
        f"REVOKE CREATE ON SCHEMA {schema} FROM {runtime};",
        f"GRANT USAGE ON SCHEMA {schema} TO {runtime};",
    ]
    return "\n".join(lines) + "\n"


def runtime_grants(store, runtime: str) -> list[str]:
    """Return the statements that give `runtime` exactly its rights on the store's tables."""
    runtime = check_role(runtime)
    read = [store.clients, store.holds, store.experiments]
    log = [store.predictions, store.feedback]
    names = [t.name for t in (*read, *log, store.quota_counters)] + [store.version_table]
    return [
        f"REVOKE ALL ON {', '.join(names)} FROM {runtime}",
        f"GRANT SELECT ON {', '.join([*(t.name for t in read), store.version_table])} TO {runtime}",
        f"GRANT SELECT, INSERT ON {', '.join(t.name for t in log)} TO {runtime}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {store.quota_counters.name} TO {runtime}",
    ]


def grant_runtime(conn: sa.Connection, store, runtime: str) -> None:
    """Give `runtime` its rights on the store's tables (run by their owner, after migrating)."""
    for statement in runtime_grants(store, runtime):
        conn.exec_driver_sql(statement)
    sequence = conn.execute(
        sa.text("SELECT pg_get_serial_sequence(:table, 'feedback_id')"),
        {"table": store.feedback.name},
    ).scalar()
    if sequence:  # feedback's id: an insert draws the next number
        conn.exec_driver_sql(f"GRANT USAGE ON SEQUENCE {sequence} TO {runtime}")
