"""The A/B experiment record: which champion and challenger, the challenger's share, the salt
that assigns listings to arms, the window (start, stop) and the plan (each metric's margin with
its reason, the minimum detectable effect, the planned listings per arm).

One experiment runs at a time: it runs from `started_at` until `stopped_at` is set.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import sqlalchemy as sa

from carprice.runtime.store_schema import Database


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """A time as UTC-aware (SQLite gives stored UTC times back without a zone)."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def new_experiment_id() -> str:
    return uuid.uuid4().hex


class Experiments(Database):
    """Starting, stopping and reading A/B experiments."""

    def start_experiment(
        self,
        champion: str,
        challenger: str,
        share: float,
        plan: dict,
        at=None,
        experiment_id: str | None = None,
    ) -> dict:
        """Record a new running experiment with a fresh salt (and a fresh id unless given)
        and return it; ValueError when one is running already."""
        if not 0 < share < 1:
            raise ValueError(f"share must lie strictly between 0 and 1, got {share}")
        row = {
            "experiment_id": experiment_id or new_experiment_id(),
            "champion_version": champion,
            "challenger_version": challenger,
            "share": float(share),
            "salt": secrets.token_hex(16),
            "started_at": at or dt.datetime.now(dt.UTC),
            "stopped_at": None,
            "plan": plan,
        }
        with self.engine.begin() as conn:
            running = conn.execute(self._select().where(self._running())).first()
            if running is not None:
                raise ValueError(f"experiment {running.experiment_id} is running; stop it first")
            conn.execute(self.experiments.insert().values(**row))
        return row

    def stop_experiment(self, at=None) -> dict | None:
        """Stop the running experiment; return it (None when none runs)."""
        e = self.experiments
        with self.engine.begin() as conn:
            running = conn.execute(self._select().where(self._running())).mappings().first()
            if running is None:
                return None
            at = at or dt.datetime.now(dt.UTC)
            query = e.update().where(e.c.experiment_id == running["experiment_id"])
            conn.execute(query.values(stopped_at=at))
        return self._clean({**running, "stopped_at": at})

    def running_experiment(self) -> dict | None:
        """The experiment running now, or None."""
        return self._first(self._select().where(self._running()))

    def experiment(self, experiment_id: str) -> dict | None:
        """The experiment with this id, or None."""
        e = self.experiments
        return self._first(self._select().where(e.c.experiment_id == experiment_id))

    def latest_experiment(self, challenger: str | None = None) -> dict | None:
        """The experiment started last (of this challenger version, when given), or None."""
        e = self.experiments
        query = self._select().order_by(e.c.started_at.desc())
        if challenger is not None:
            query = query.where(e.c.challenger_version == challenger)
        return self._first(query)

    def _select(self):
        return sa.select(self.experiments)

    def _running(self):
        return self.experiments.c.stopped_at.is_(None)

    def _first(self, query) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).mappings().first()
        return None if row is None else self._clean(row)

    @staticmethod
    def _clean(row) -> dict:
        out = dict(row)
        out["started_at"], out["stopped_at"] = _utc(out["started_at"]), _utc(out["stopped_at"])
        return out
