"""The monitor says how far the store lags behind the answers: rows still in the local spool."""

from __future__ import annotations

from carprice.monitor.stage import freshness
from carprice.runtime.spool import SPOOL_FILE, Spool


def test_it_counts_answered_rows_that_are_not_in_the_store_yet(tmp_path):
    spool = Spool(tmp_path / SPOOL_FILE)
    spool.put_predictions([{"prediction_id": "a"}, {"prediction_id": "b"}])
    report = freshness(tmp_path)
    assert report["spool_predictions"] == 2 and report["spool_feedback"] == 0
    assert "not in the store yet" in report["note"]


def test_an_empty_spool_means_the_store_has_everything(tmp_path):
    Spool(tmp_path / SPOOL_FILE)
    note = freshness(tmp_path)["note"]
    assert note == "every answered estimate and feedback post is in the store"


def test_without_a_local_spool_it_points_to_the_services_metrics(tmp_path):
    assert "carprice_spool_" in freshness(tmp_path)["note"]
