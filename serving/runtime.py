"""What a worker serves: the champion, the optional shadow challenger, the store and metrics.

The champion bundle is the one the configuration names, else the one the gunicorn master resolved
and verified (`CARPRICE_SERVE_BUNDLE`), else `CARPRICE_BUNDLE`, else the deploy pointer. A bundle
that fails verification is refused: the worker stays up, says why in its log and on `/readyz`,
and answers estimates with 503. A challenger that fails to load is only logged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from carprice.runtime import pointer, treecode
from carprice.runtime.bundle import BundleError, load_bundle
from carprice.runtime.home import home_dir
from carprice.runtime.predictor import Predictor
from carprice.runtime.store import Store, default_url
from serving.metrics import Metrics

log = logging.getLogger("carprice.serving")
# Prediction-log rows a worker keeps while the store is down, written once it is back. Beyond
# this the oldest are dropped (and counted): estimates keep flowing, memory stays bounded.
PENDING_MAX_ROWS = 50_000
RETRY_SECONDS = 1.0


def champion_path(home: Path, configured: str | os.PathLike | None = None) -> Path | None:
    """Return the bundle directory the champion comes from, or None when nothing names one."""
    for candidate in (
        configured,
        os.environ.get("CARPRICE_SERVE_BUNDLE"),
        os.environ.get("CARPRICE_BUNDLE"),
    ):
        if candidate:
            return Path(candidate).resolve()
    return pointer.read_pointer(home, pointer.CURRENT)


def challenger_path(home: Path, configured: str | os.PathLike | None = None) -> Path | None:
    """Return the shadow challenger's bundle directory, or None."""
    candidate = configured or os.environ.get("CARPRICE_CHALLENGER_BUNDLE")
    if candidate:
        return Path(candidate).resolve()
    return pointer.read_pointer(home, pointer.CHALLENGER)


def open_store(home: Path, url: str | None = None, prefix: str | None = None) -> Store:
    """Open the store (CARPRICE_DB_URL or SQLite under home) and create missing tables."""
    if prefix is None:
        prefix = os.environ.get("CARPRICE_DB_PREFIX", "")
    store = Store(url or default_url(home), prefix)
    store.create()
    return store


@dataclass
class Runtime:
    """Per-worker state, kept in `app.extensions["carprice"]`."""

    home: Path
    store: Store
    metrics: Metrics = field(default_factory=Metrics)
    champion: Predictor | None = None
    challenger: Predictor | None = None
    refusal: str | None = None
    draining: bool = False  # set on SIGTERM: readiness answers 503 while requests finish
    pending: deque = field(default_factory=deque)  # log rows the store could not take yet
    _pending_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _retrier: threading.Thread | None = field(default=None, repr=False)

    def log_estimates(self, rows: list[dict]) -> bool:
        """Write prediction-log rows (after any held back); keep them if the store is down.

        Returns False when the rows were held back: the estimates are still answered (pricing
        does not depend on the log), and the rows are written once the store answers again.
        """
        with self._pending_lock:
            try:
                self._flush_locked()
                self.store.log_estimates(rows)
                return True
            except SQLAlchemyError as err:
                self.metrics.store_failures.labels("log_estimates").inc()
                log.error("store unavailable, holding %d log rows back: %s", len(rows), err)
                self._hold_locked(rows)
                return False

    def flush_pending(self) -> None:
        """Write held-back log rows; raise SQLAlchemyError while the store is still down."""
        with self._pending_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self.pending:
            return
        rows = list(self.pending)
        self.store.log_estimates(rows)
        self.pending.clear()
        log.info("store back: wrote %d held-back prediction-log rows", len(rows))

    def _retry_pending(self, seconds: float = RETRY_SECONDS) -> None:
        """Write held-back rows from a background thread until the store takes them."""
        while True:
            time.sleep(seconds)
            with self._pending_lock:
                try:
                    self._flush_locked()
                except SQLAlchemyError:
                    continue  # still down; the next round tries again
                if not self.pending:
                    self._retrier = None  # under the lock: a later hold starts a new one
                    return

    def _hold_locked(self, rows: list[dict]) -> None:
        if self._retrier is None:  # one retry thread per worker, only while rows wait
            self._retrier = threading.Thread(
                target=self._retry_pending, name="log-retry", daemon=True
            )
            self._retrier.start()
        self.pending.extend(rows)
        excess = len(self.pending) - PENDING_MAX_ROWS
        if excess > 0:
            for _ in range(excess):
                self.pending.popleft()
            self.metrics.log_rows_dropped.inc(excess)
            log.error("dropped %d held-back prediction-log rows (buffer full)", excess)

    @property
    def tree_cache(self) -> Path:
        """Where compiled tree scorers are cached (CARPRICE_TREE_CACHE or home/cache/trees)."""
        return treecode.cache_dir(self.home)

    @classmethod
    def start(cls, config: dict) -> Runtime:
        """Load the bundles and open the store named by the configuration."""
        home = Path(config.get("CARPRICE_HOME") or home_dir())
        store = open_store(home, config.get("DB_URL"), config.get("DB_PREFIX"))
        store.start_checkpointer()
        runtime = cls(home=home, store=store)
        runtime.load_champion(champion_path(home, config.get("BUNDLE")))
        runtime.load_challenger(challenger_path(home, config.get("CHALLENGER_BUNDLE")))
        return runtime

    def load_champion(self, path: Path | None) -> None:
        if path is None:
            self.refusal = "no model bundle configured (no --bundle and no deploy pointer)"
        else:
            try:
                self.champion = Predictor(
                    load_bundle(path), compiled=True, tree_cache=self.tree_cache
                )
            except BundleError as err:
                self.refusal = f"bundle refused: {err}"
        if self.champion is None:
            log.error("not ready: %s", self.refusal)
            return
        self.metrics.model_info.labels("champion", self.champion.version).set(1)
        log.info("serving model %s from %s", self.champion.version, path)

    def load_challenger(self, path: Path | None) -> None:
        if path is None:
            return
        try:
            self.challenger = Predictor(
                load_bundle(path), compiled=True, tree_cache=self.tree_cache
            )
        except Exception as err:  # a challenger must never stop the champion from serving
            log.error("challenger not loaded, serving without shadow model: %s", err)
            return
        self.metrics.model_info.labels("challenger", self.challenger.version).set(1)
        log.info("shadowing with challenger %s from %s", self.challenger.version, path)
