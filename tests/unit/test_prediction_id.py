"""The prediction id: made from the time, read back as the UTC day it falls in."""

from __future__ import annotations

import datetime as dt

from carprice.runtime import prediction_id


def test_ids_made_at_a_moment_fall_within_its_day_and_sort_by_time(monkeypatch):
    day = dt.date(2026, 3, 1)
    noon = dt.datetime.combine(day, dt.time(12), dt.UTC)
    made = []
    for moment in (dt.datetime.combine(day, dt.time(), dt.UTC), noon, noon.replace(hour=23)):
        monkeypatch.setattr(
            prediction_id.time, "time_ns", lambda m=moment: int(m.timestamp()) * 10**9
        )
        made.append(prediction_id.new_ids(3))
    flat = [pid for ids in made for pid in ids]
    assert all(len(pid) == 32 and int(pid, 16) >= 0 for pid in flat)
    assert len(set(flat)) == 9  # random tails
    assert all(len({pid[:12] for pid in ids}) == 1 for ids in made)  # one stamp per call
    assert [ids[0][:12] for ids in made] == sorted(ids[0][:12] for ids in made)
    first, following = prediction_id.day_id(day), prediction_id.day_id(day + dt.timedelta(1))
    assert all(first <= pid < following for pid in flat)
    assert made[0][0][:12] == first  # the day's first millisecond reads back as its start
    before = prediction_id.day_id(day - dt.timedelta(1))
    assert before < first and dt.datetime.fromtimestamp(int(first, 16) / 1000, dt.UTC) == (
        dt.datetime.combine(day, dt.time(), dt.UTC)
    )
