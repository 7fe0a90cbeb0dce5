"""The store: the prediction log, feedback, client holds, and API clients with their quotas,
behind one database object (SQLAlchemy Core; SQLite or PostgreSQL). No pandas here: the
service imports it.

Each table family has its module: store_schema.py (the engine, the schema and its migrations),
store_log.py (the log's hot path, the spool's hand-off, the WAL checkpoint, retention),
store_feedback.py, store_clients.py, store_holds.py and store_experiments.py (the A/B
experiment record); the tables are in store_tables.py.
Every row records the client that sent it (NULL for anonymous calls).
"""

from __future__ import annotations

from carprice.runtime.store_clients import Clients
from carprice.runtime.store_experiments import Experiments
from carprice.runtime.store_feedback import Feedback, dedupe_key, feedback_key
from carprice.runtime.store_holds import Holds
from carprice.runtime.store_log import PredictionLog
from carprice.runtime.store_schema import DB_FILE, SchemaOutdated, StoreError, default_url
from carprice.runtime.store_tables import DROP, HOLD

__all__ = [
    "DB_FILE",
    "DROP",
    "HOLD",
    "SchemaOutdated",
    "StoreError",
    "Store",
    "dedupe_key",
    "default_url",
    "feedback_key",
]


class Store(PredictionLog, Feedback, Clients, Holds, Experiments):
    """The prediction log, feedback, holds, clients and experiments tables behind one engine."""
