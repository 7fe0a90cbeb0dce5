"""Steady traffic against a service while production switches: who answered, how, how fast."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import threading
import time
from dataclasses import dataclass, field

from serving.examples import EXAMPLE_LISTING

SLOW_S = 2.0


# What a server logs once all its workers are ready and the port's new connections are its own
# (serving/handover.py), as one JSON line with its `time`.
TAKEN = "new connections now come to this server"


@dataclass
class TrafficStats:
    requests: int = 0
    non_2xx: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    slow: list[float] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)  # in order of change
    max_seconds: float = 0.0
    # (client connection, sent at, answered at, model version), wall-clock seconds (time.time(),
    # comparable with a server log's times); each client sends its next request after the answer
    answers: list[tuple[int, float, float, str]] = field(default_factory=list)

    def versions_sent_after(self, moment: float) -> set[str]:
        """The model versions that answered requests sent after `moment` (time.time())."""
        return {version for _, sent, _, version in self.answers if sent > moment}

    def answered_after(self, version: str, moment: float) -> int:
        """How many answers of `version` arrived after `moment`: that server still ran then."""
        return sum(v == version and answered > moment for _, _, answered, v in self.answers)

    def back_to_old(self, old: str, new: str) -> list[int]:
        """The client connections whose answers went from `new` back to `old`."""
        flipped, seen_new = [], set()
        for client, _, _, version in sorted(self.answers, key=lambda a: (a[0], a[1])):
            if version == new:
                seen_new.add(client)
            elif version == old and client in seen_new and client not in flipped:
                flipped.append(client)
        return flipped


def taken_at(log: str) -> float:
    """When the server of `log` took the port's new connections (time.time() seconds): the log
    line's time, written to the millisecond (truncated), plus that millisecond, so that a moment
    counted as after it is after the line was written."""
    for line in log.splitlines():
        if TAKEN in line:
            entry = json.loads(line[line.index("{") :])
            return dt.datetime.fromisoformat(entry["time"]).timestamp() + 0.001
    raise AssertionError(f"the server never logged {TAKEN!r}:\n{log[-3000:]}")


class Traffic:
    """`connections` clients posting single-listing estimates on fresh connections until stopped.

    Bounded: each client stops after `max_seconds` or `max_requests`, whichever comes first.
    """

    def __init__(self, port: int, connections: int = 8, max_seconds=600, max_requests=200_000):
        self.port, self.connections = port, connections
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.stats = TrafficStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _one(self, client: int) -> None:
        body = json.dumps({"listings": [EXAMPLE_LISTING]})
        sent = time.time()
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            conn.request("POST", "/v1/estimates", body, {"Content-Type": "application/json"})
            answer = conn.getresponse()
            payload = answer.read()
            answered = time.time()
            conn.close()
        except OSError as err:
            with self._lock:
                self.stats.requests += 1
                self.stats.errors.append(repr(err))
            return
        seconds = time.perf_counter() - started
        with self._lock:
            s = self.stats
            s.requests += 1
            s.max_seconds = max(s.max_seconds, seconds)
            if seconds > SLOW_S:
                s.slow.append(round(seconds, 2))
            if not 200 <= answer.status < 300:
                s.non_2xx.append(answer.status)
                return
            version = json.loads(payload)["model_version"]
            s.answers.append((client, sent, answered, version))
            if not s.versions or s.versions[-1] != version:
                s.versions.append(version)

    def _client(self, client: int) -> None:
        deadline = time.monotonic() + self.max_seconds
        for _ in range(self.max_requests // self.connections):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            self._one(client)

    def __enter__(self) -> Traffic:
        self._threads = [
            threading.Thread(target=self._client, args=(c,)) for c in range(self.connections)
        ]
        for thread in self._threads:
            thread.start()
        time.sleep(1.0)  # traffic is flowing before the switch starts
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(1.0)  # and keeps flowing after it ended
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
