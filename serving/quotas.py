"""Per-client quotas, counted in the store so they hold across workers and replicas.

Windows are fixed: estimates per minute (each listing of a request counts: a request of 1,000
listings uses 1,000) and feedback posts per UTC day (see carprice.runtime.clients.window).
Anonymous estimates count the same way against their source address (serving/auth.py), and so
do failed key checks (scope `key_failures`, per minute). A
request that would take its caller past the quota gets 429 with Retry-After: the seconds until
its window ends, and its count is handed back (a refused 1,000-listing request spends nothing).

Feedback is counted exactly: one upsert per post. Estimates stay fast by counting in the worker
and adding the count to the shared row every `sync_seconds` (0.2) or `sync_requests` (20),
whichever comes first; the answer of that upsert is the total of every worker. Between two
syncs a worker only knows its own requests since, so a client can overshoot its quota by at most
the listings of (sync_requests - 1) requests per worker in a window (and never more than the
quota itself per worker). Sync every request (`CARPRICE_QUOTA_SYNC_REQUESTS=1`) for an exact count.

While the store does not answer, requests are admitted on the local count and the sync is
retried after RETRY_SECONDS (the count is kept and added later).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from carprice.runtime.clients import window
from carprice.runtime.store import Store, StoreError

log = logging.getLogger("carprice.serving")
RETRY_SECONDS = 5.0  # after a failed sync, the store is left alone this long
PRUNE_SECONDS = 600.0  # how often a worker deletes counters of old windows
KEEP_SECONDS = 2 * 86_400  # counters younger than this are kept


@dataclass
class _Window:
    start: int
    shared: int = 0  # the store's total at the last sync (every worker)
    pending: int = 0  # admitted here since, not yet added to the store
    requests: int = 0  # requests admitted here since the last sync
    synced: float = float("-inf")  # monotonic time of the last sync


class Quotas:
    """One worker's view of the shared quota counters."""

    def __init__(self, store: Store, sync_seconds: float, sync_requests: int):
        self.store = store
        self.sync_seconds, self.sync_requests = sync_seconds, sync_requests
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()
        self._store_away_until = float("-inf")
        self._pruned = time.monotonic()

    def admit(
        self, client: str, scope: str, limit: int, exact: bool = False, amount: int = 1
    ) -> int | None:
        """Count a request of `amount` units (listings, posts); return None when it is within
        quota, else its Retry-After."""
        start, retry_after = window(scope, time.time())
        now, units = time.monotonic(), amount
        with self._lock:
            current = self._windows.get((client, scope))
            if current is None or current.start != start:
                current = self._windows[(client, scope)] = _Window(start)
            if current.shared + current.pending + amount > limit:
                return retry_after
            current.pending += amount
            current.requests += 1
            due = (
                exact
                or current.requests >= self.sync_requests
                or now - current.synced >= self.sync_seconds
            )
            if not due or now < self._store_away_until:
                return None
            amount = current.pending
            current.pending -= amount
            current.requests, current.synced = 0, now
        try:
            total = self.store.count_usage(client, scope, start, amount)
        except StoreError as err:
            log.warning("quota counters not written, counting locally: %s", err)
            with self._lock:
                current.pending += amount
                self._store_away_until = now + RETRY_SECONDS
            return None
        refused = total > limit
        if refused:  # its own units are handed back; the admitted requests' stand
            total = self._refund(client, scope, start, units, total)
        with self._lock:
            current.shared = max(current.shared, total)
        self._prune(now)
        return retry_after if refused else None

    def used_up(self, client: str, scope: str, limit: int) -> int | None:
        """Return the Retry-After of a quota this worker last saw used up in the current
        window, else None (no store call: the next `admit` asks the store)."""
        start, retry_after = window(scope, time.time())
        with self._lock:
            current = self._windows.get((client, scope))
            seen = current.shared + current.pending if current and current.start == start else 0
        return retry_after if seen >= limit else None

    def _refund(self, client: str, scope: str, start: int, units: int, total: int) -> int:
        try:
            return self.store.count_usage(client, scope, start, -units)
        except StoreError as err:
            log.warning("a refused request's count not handed back: %s", err)
            return total

    def _prune(self, now: float) -> None:
        if now - self._pruned < PRUNE_SECONDS:
            return
        self._pruned = now
        try:
            self.store.prune_usage(int(time.time()) - KEEP_SECONDS)
        except StoreError as err:
            log.warning("old quota counters not pruned: %s", err)
