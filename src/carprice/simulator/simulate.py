"""Write a simulated used-car market as weekly listing batches and sale outcomes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from carprice.data.ingest import SIMULATED_MARKER
from carprice.runtime.home import file_sha256
from carprice.simulator.market import generate_listings
from carprice.simulator.market_tables import Calibration, load_calibration
from carprice.simulator.sales import simulate_sales
from carprice.simulator.scenarios import Drift, parse_drift

__all__ = ["generate_listings", "iso_week_label", "parse_drift", "simulate", "write_csv"]


def iso_week_label(day: dt.date) -> str:
    """Return the ISO week of a day as YYYY-Www."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a frame as CSV, byte for byte the same for the same frame."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%d")
    tmp = path.with_name(path.name + ".tmp")
    out.to_csv(tmp, index=False, lineterminator="\n", encoding="utf-8")
    tmp.replace(path)


def mark_simulated(out_dir: Path, paths: list[Path]) -> None:
    """List written files with their sha256 in the folder's marker, so ingest knows them."""
    marker = Path(out_dir) / SIMULATED_MARKER
    try:
        files = json.loads(marker.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        files = {}
    files.update({p.name: file_sha256(p) for p in paths})
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(
        json.dumps({"files": dict(sorted(files.items()))}, indent=2) + "\n", encoding="utf-8"
    )
    tmp.replace(marker)


def simulate(
    *,
    weeks: int,
    start: dt.date,
    seed: int,
    out_dir: Path,
    listings_per_week: int = 5000,
    drift: str | None = None,
    progress: Callable[[str], None] | None = None,
    calibration: Calibration | None = None,
    steps: Callable[[int, int | None, str], None] | None = None,
) -> list[Path]:
    """Write `weeks` weekly batches of listings and their sales into `out_dir`.

    Week w starts on the Monday of the ISO week holding `start` plus w weeks and is a
    deterministic function of (seed, w) and the arguments, so weeks can be regenerated alone.
    Returns the written paths: listings-YYYY-Www.csv then sales-YYYY-Www.csv for each week.
    Sales of a week's listings are in that week's sales file, even when sold_at falls later.
    `simulated.json` in `out_dir` lists the files with their sha256, so that ingest records
    the snapshot's source as simulated.
    `progress` gets one message per week written, `steps(week, weeks, message)` the same count.
    """
    if weeks < 0 or listings_per_week < 0:
        raise ValueError("weeks and listings_per_week must be non-negative")
    cal = calibration or load_calibration()
    monday = start - dt.timedelta(days=start.weekday())
    market: Drift = parse_drift(drift, origin=monday)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for week in range(weeks):
        day = monday + dt.timedelta(weeks=week)
        label = iso_week_label(day)
        listings = generate_listings(
            listings_per_week,
            seed=[seed, week, 0],
            when=day,
            days=7,
            calibration=cal,
            drift=market,
            include_truth=True,
            id_prefix=f"{label}-",
        )
        sales = simulate_sales(listings, seed=[seed, week, 1], calibration=cal)
        paths = (out_dir / f"listings-{label}.csv", out_dir / f"sales-{label}.csv")
        write_csv(listings.drop(columns="fair_price"), paths[0])
        write_csv(sales, paths[1])
        mark_simulated(out_dir, list(paths))
        written.extend(paths)
        done = f"{label}: {len(listings)} listings, {len(sales)} sales -> {paths[0].name}"
        if progress is not None:
            progress(f"week {week + 1}/{weeks} {done}")
        if steps is not None:
            steps(week + 1, weeks, done)
    return written
