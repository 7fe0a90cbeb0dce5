"""Listing source files: find them, read them, and refuse unreadable ones in one sentence.

Every refusal is a `ListingFileError` naming the file, what was expected and what was found.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from carprice.data.schema import canonical_name, expected_columns

LISTING_SUFFIXES = (".csv", ".parquet", ".pq")


def discover_sources(path: Path) -> list[Path]:
    """List the CSV/Parquet files at a path: the file itself, or a folder's files, sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in LISTING_SUFFIXES)
    raise FileNotFoundError(f"listings not found: {path}")


class ListingFileError(ValueError):
    """A listing file that cannot be read as listings; the message names the file."""


def read_file(path: Path) -> pd.DataFrame:
    """Read one CSV (all text) or Parquet file; refuse an empty or unreadable one by name."""
    if path.stat().st_size == 0:
        raise ListingFileError(
            f"{path}: the file is empty (0 bytes); expected a "
            f"{'CSV' if path.suffix == '.csv' else 'Parquet file'} with a header row of listing "
            f"columns ({expected_columns()})"
        )
    try:
        if path.suffix == ".csv":
            # Everything as text first so that nothing is lost; numeric columns are parsed below.
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        return pd.read_parquet(path)
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as err:
        kind = "CSV (UTF-8, ',' separated)" if path.suffix == ".csv" else "Parquet file"
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ListingFileError(f"{path}: not a readable {kind}: {detail}") from err


def no_listing_columns(path: Path, columns) -> str:
    """Say what a file without listing columns holds, guessing a wrong delimiter."""
    found = [str(c) for c in columns]
    expected = f"expected the columns {expected_columns()}"
    if path.suffix == ".csv":
        expected += " separated by ','"
    if len(found) == 1:
        delimiter = next((d for d in (";", "\t", "|") if d in found[0]), None)
        hint = f" - is the delimiter {delimiter!r}?" if delimiter else ""
        return f"{path}: {expected}; found one column {found[0][:80]!r}{hint}"
    return f"{path}: {expected}; found the columns {', '.join(found[:20])}"


def check_sources(path: Path, required: tuple[str, ...]) -> None:
    """Refuse listings the pipeline cannot use, in one sentence naming the file.

    Reads headers (and at most one row) only: an empty file, a listing file whose header lacks
    a required column, and listing files with a header but no rows are refused. Files without
    any listing column (sales exports beside the listings) are left to `read_listings`, which
    skips them in a folder and refuses them alone.
    """
    listing_files, rows = 0, 0
    for source in discover_sources(path):
        if source.stat().st_size == 0:
            read_file(source)  # raises the empty-file message
        columns, has_rows = _head(source)
        present = {canonical_name(c) for c in columns} - {None}
        missing = [c for c in required if c not in present]
        if present and missing:
            raise ListingFileError(
                f"{source}: missing the required column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}; expected {expected_columns()}; "
                f"found {', '.join(map(str, columns))}"
            )
        listing_files += bool(present)
        rows += bool(present) and has_rows
    if listing_files and not rows:
        what = "the file has" if listing_files == 1 else "its listing files have"
        raise ListingFileError(
            f"{path}: {what} a header row and 0 rows; expected at least one listing row"
        )


def _head(path: Path) -> tuple[list[str], bool]:
    """Return a file's column names and whether it holds at least one row."""
    try:
        if path.suffix == ".csv":
            head = pd.read_csv(path, nrows=1, dtype=str)
            return list(head.columns), len(head) > 0
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path)
        return list(meta.schema.names), meta.num_rows > 0
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError):
        frame = read_file(path)  # raises the unreadable-file message
        return list(frame.columns), len(frame) > 0
