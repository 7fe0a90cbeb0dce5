"""The snapshot id: a content address that grows with the listing contract without moving."""

from __future__ import annotations

import hashlib

from carprice.data import ingest
from carprice.runtime.listing import CANONICAL_COLUMNS, REQUIRED_COLUMNS

SHAS = ["b" * 64, "a" * 64]
OPTIONAL = [c for c in CANONICAL_COLUMNS if c not in REQUIRED_COLUMNS]


def _sources(missing: list[str]) -> list[dict]:
    """Source records of files that lack `missing` and every optional column."""
    return [{"sha256": sha, "missing_columns": [*OPTIONAL, *missing]} for sha in SHAS]


def test_the_id_of_files_with_every_required_column_is_the_address_it_always_had():
    digest = hashlib.sha256(ingest.INGEST_VERSION.encode())
    for sha in sorted(SHAS):
        digest.update(sha.encode())
    digest.update(b"")
    assert ingest.snapshot_id(_sources([])) == digest.hexdigest()


def test_an_optional_column_held_by_the_files_gives_a_new_id(monkeypatch):
    """Else the snapshot written while the column was ignored is found, and the column lost."""
    monkeypatch.setattr(ingest, "REQUIRED_COLUMNS", tuple(c for c in REQUIRED_COLUMNS if c != "hp"))
    held = ingest.snapshot_id(_sources([]))
    assert held != ingest.snapshot_id(_sources(["hp"]))
    assert ingest.optional_columns_held(_sources([])) == ["hp"]


def test_an_optional_column_the_files_lack_keeps_their_id(monkeypatch):
    before = ingest.snapshot_id(_sources(["hp"]))
    monkeypatch.setattr(ingest, "REQUIRED_COLUMNS", tuple(c for c in REQUIRED_COLUMNS if c != "hp"))
    assert ingest.snapshot_id(_sources(["hp"])) == before
