"""The prediction id: 12 hex digits of the Unix time in milliseconds, then 20 random ones.

Ids sort by time, so the log's index grows at its end instead of at random pages, and the
PostgreSQL log is partitioned by ranges of them, one per UTC day (store_partitions.py).
"""

from __future__ import annotations

import datetime as dt
import os
import time


def _stamp(millis: int) -> str:
    """The head of the ids made in one millisecond since the epoch."""
    return f"{millis:012x}"


def new_ids(count: int) -> list[str]:
    """Return `count` new ids made now (one time stamp, random tails)."""
    stamp = _stamp(time.time_ns() // 1_000_000)
    text = os.urandom(10 * count).hex()
    return [stamp + text[i : i + 20] for i in range(0, 20 * count, 20)]


def day_id(day: dt.date) -> str:
    """The smallest id of a UTC day (the head of its first millisecond's ids); the ids made
    that day sort from it up to the next day's."""
    return _stamp(int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()) * 1000)
