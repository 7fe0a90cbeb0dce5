"""Key checks in a worker: one store lookup and one HMAC per key, kept for a while.

Two caches, so that made-up keys cannot push out real ones:
- verified keys (the whole key -> its client), for `ttl` seconds: only a key that passed its
  check enters, so only holders of real keys can fill it; past VERIFIED_MAX the least recently
  used goes;
- unknown key ids (-> when to ask again), for `ttl` seconds: a flood of random well-formed keys
  lands here; past UNKNOWN_MAX the least recently used goes. Neither is ever cleared outright.

A wrong secret or a revoked key is not cached: each try is looked up again (the failed-attempt
limit per source address bounds them, serving/auth.py). An unknown, a revoked and a wrong key
all run the same check: one HMAC of the secret compared in constant time (clients.verify), with
a digest no secret has when the id is unknown, so neither the work nor the time tells them
apart.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from carprice.runtime import clients
from carprice.runtime.store import Store, StoreError

VERIFIED_MAX = 10_000  # real keys kept per worker
UNKNOWN_MAX = 10_000  # unknown key ids kept per worker


class Keys:
    """Verify keys against the store; keep verified keys and unknown ids for `ttl` seconds."""

    def __init__(self, store: Store, ttl: float, pepper: bytes):
        self.store, self.ttl, self.pepper = store, ttl, pepper
        self._verified: OrderedDict[str, tuple[float, clients.Client]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def client(self, key: str) -> clients.Client | None:
        """Return the client a key belongs to, or None (not a key, unknown, wrong or revoked).

        While the store does not answer, a key verified before keeps its client; any other key
        raises the store's StoreError.
        """
        now = time.monotonic()
        with self._lock:
            hit = self._verified.get(key)
            if hit is not None:
                self._verified.move_to_end(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        parsed = clients.parse_key(key)
        if parsed is None:
            return None  # not even a key: nothing to look up, nothing worth caching
        key_id, secret = parsed
        try:
            row = self._row(key_id, now)
        except StoreError:
            if hit is None:
                raise
            self._keep(key, now, hit[1])  # the store is away: the last answer stands,
            return hit[1]  # asked again after another TTL
        matches = clients.verify(secret, row, self.pepper)  # for an unknown id too
        if not matches or row is None or row["revoked"]:
            with self._lock:
                self._verified.pop(key, None)
            return None
        found = clients.client_from_row(row)
        self._keep(key, now, found)
        return found

    def _row(self, key_id: str, now: float) -> dict | None:
        """The `clients` row of a key id; None for an unknown one, remembered for `ttl`."""
        with self._lock:
            until = self._unknown.get(key_id)
            if until is not None and until > now:
                self._unknown.move_to_end(key_id)
                return None
        row = self.store.client_by_key_id(key_id)
        with self._lock:
            if row is None:
                self._unknown[key_id] = now + self.ttl
                self._unknown.move_to_end(key_id)
                while len(self._unknown) > UNKNOWN_MAX:
                    self._unknown.popitem(last=False)
            else:
                self._unknown.pop(key_id, None)
        return row

    def _keep(self, key: str, now: float, client: clients.Client) -> None:
        with self._lock:
            self._verified[key] = (now + self.ttl, client)
            self._verified.move_to_end(key)
            while len(self._verified) > VERIFIED_MAX:
                self._verified.popitem(last=False)
