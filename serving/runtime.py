"""What a worker serves: the champion, the optional shadow challenger, the store and metrics.

The champion bundle is the one the configuration names, else the one the gunicorn master resolved
and verified (`CARPRICE_SERVE_BUNDLE`), else `CARPRICE_BUNDLE`, else the deploy pointer. A bundle
that fails verification is refused: the worker stays up, says why in its log and on `/readyz`,
and answers estimates with 503 (so does a bundle whose tree-scorer tables are refused: see
carprice.runtime.treecode). A challenger that fails to load is only logged.

With a challenger loaded and an A/B share above 0 (`AB_SHARE`, else CARPRICE_AB_SHARE; 0..1,
default 0) the challenger prices that share of the listings that carry a `listing_key`
(carprice.runtime.experiment); with share 0 it only shadows the champion. `EXPERIMENT_ID` (else
CARPRICE_EXPERIMENT_ID) names the experiment record to serve, as the production container is
started for one (carprice.release.experiment): its salt and share come from that record in the
store, and a worker that cannot join it serves the champion alone (no experiment on /readyz).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from carprice.runtime import pointer
from carprice.runtime.bundle import BundleError, load_bundle
from carprice.runtime.experiment import parse_share
from carprice.runtime.home import home_dir
from carprice.runtime.predictor import Predictor
from carprice.runtime.spool import (
    DEFAULT_ANONYMOUS_SHARE,
    DEFAULT_MAX_ROWS,
    SPOOL_FILE,
    Spool,
    drain,
)
from carprice.runtime.store import Store, StoreError, default_url
from serving.metrics import Metrics
from serving.releases import release_of

log = logging.getLogger("carprice.serving")
DRAIN_SECONDS = 1.0  # how often the drainer moves rows spooled during a store outage
LOCAL_FIRST_DRAIN_SECONDS = 0.5  # ... and rows a remote store gets from the local spool


def open_spool(home: Path, synchronous: str = "FULL") -> Spool:
    """Open the local spool under home (CARPRICE_SPOOL_MAX_ROWS caps it, anonymous estimates'
    rows at CARPRICE_SPOOL_ANONYMOUS_SHARE of that)."""
    cap = int(os.environ.get("CARPRICE_SPOOL_MAX_ROWS") or DEFAULT_MAX_ROWS)
    share = float(os.environ.get("CARPRICE_SPOOL_ANONYMOUS_SHARE") or DEFAULT_ANONYMOUS_SHARE)
    return Spool(Path(home) / SPOOL_FILE, cap, synchronous, share)


def local_first(store: Store) -> bool:
    """Whether prediction-log rows go to the local spool first (a remote store, unless
    CARPRICE_LOG_LOCAL_FIRST=0): the answer then waits for a local commit, not a round trip."""
    return not store.is_sqlite and os.environ.get("CARPRICE_LOG_LOCAL_FIRST", "1") != "0"


def champion_path(home: Path, configured: str | os.PathLike | None = None) -> Path | None:
    """Return the bundle directory the champion comes from, or None when nothing names one."""
    for candidate in (
        configured,
        os.environ.get("CARPRICE_SERVE_BUNDLE"),
        os.environ.get("CARPRICE_BUNDLE"),
    ):
        if candidate:
            return Path(candidate).resolve()
    return pointer.read_pointer(home, pointer.CURRENT)


def challenger_path(home: Path, configured: str | os.PathLike | None = None) -> Path | None:
    """Return the shadow challenger's bundle directory, or None."""
    candidate = configured or os.environ.get("CARPRICE_CHALLENGER_BUNDLE")
    if candidate:
        return Path(candidate).resolve()
    return pointer.read_pointer(home, pointer.CHALLENGER)


def open_store(home: Path, url: str | None = None, prefix: str | None = None) -> Store:
    """Open the store (CARPRICE_DB_URL or SQLite under home): a new one is created, one at an
    older schema refused (SchemaOutdated: `carprice store upgrade` migrates it)."""
    if prefix is None:
        prefix = os.environ.get("CARPRICE_DB_PREFIX", "")
    store = Store(url or default_url(home), prefix)
    store.create()
    return store


@dataclass
class Runtime:
    """Per-worker state, kept in `app.extensions["carprice"]`."""

    home: Path
    store: Store
    metrics: Metrics = field(default_factory=Metrics)
    champion: Predictor | None = None
    release: dict | None = None  # the champion's release (serving/releases.py), if promoted
    challenger: Predictor | None = None
    refusal: str | None = None
    draining: bool = False  # set on SIGTERM: readiness answers 503 while requests finish
    spool: Spool | None = None
    local_first: bool = False  # rows go to the spool first; the drainer batches them on
    ab_share: float = 0.0  # share of keyed listings the challenger prices (0: shadow only)
    experiment: dict | None = None  # the running experiment of these two models, if recorded
    experiment_named: str | None = None  # the experiment id the configuration names, if any
    _drainer: threading.Thread | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def ab_active(self) -> bool:
        """Whether the challenger prices a share of the listings (A/B) instead of shadowing."""
        return self.ab_share > 0 and self.challenger is not None

    @property
    def experiment_id(self) -> str | None:
        return self.experiment["experiment_id"] if self.experiment else None

    @property
    def salt(self) -> str:
        return self.experiment["salt"] if self.experiment else ""

    def _join_experiment(self) -> None:
        """Serve the running experiment of this champion and challenger (`carprice experiment
        start`): its salt assigns the arms, its share replaces the configured one and its id
        goes into every log row. Without one, A/B runs unsalted and no analysis reads it."""
        named = self.experiment_named
        try:
            running = self.store.experiment(named) if named else self.store.running_experiment()
        except StoreError as err:
            running = None
            log.error("experiment record not read, A/B serves no experiment: %s", err)
        versions = (self.champion and self.champion.version, self.challenger.version)
        if (
            running
            and running["stopped_at"] is None
            and (running["champion_version"], running["challenger_version"]) == versions
        ):
            self.experiment = running
            self.ab_share = running["share"]
        elif named:  # never an A/B without the experiment it was started for
            self.ab_share = 0.0
            log.error(
                "experiment %s is not running for %s against %s: champion only", named, *versions
            )
        else:
            log.warning("A/B with no running experiment of %s against %s", *versions)

    def log_estimates(self, rows: list[dict]) -> bool:
        """Make prediction-log rows durable before the answer: in the store, else the spool.

        Returns False when they went to the spool. Raises SpoolFull (and the store's error
        with it) when neither can take them: the caller must not answer those estimates.
        With a remote store (local_first) every row goes to the spool and the drainer moves
        them on in batches.
        """
        if self.local_first:
            self.spool.put_predictions(rows)
            self.metrics.spooled.labels("prediction").inc(len(rows))
            return False
        try:
            self.store.log_estimates(rows)
            return True
        except StoreError as err:
            self.metrics.store_failures.labels("log_estimates").inc()
            log.error("store unavailable, spooling %d log rows: %s", len(rows), err)
        self.spool.put_predictions(rows)
        self.metrics.spooled.labels("prediction").inc(len(rows))
        return False

    def spool_feedback(self, post: dict) -> None:
        """Keep one feedback post in the spool (its prediction is there, or the store is away)."""
        self.spool.put_feedback(post)
        self.metrics.spooled.labels("feedback").inc()

    def drain_spool(self) -> tuple[int, int]:
        """Move spooled rows to the store; return (predictions, feedback) moved."""
        moved = drain(self.spool, self.store)
        if any(moved):
            self.metrics.drained.labels("prediction").inc(moved[0])
            self.metrics.drained.labels("feedback").inc(moved[1])
            # local first, a drain is routine; otherwise it follows a store outage
            level = logging.DEBUG if self.local_first else logging.INFO
            log.log(level, "drained %d predictions and %d feedback posts into the store", *moved)
        return moved

    def _drain_loop(self, seconds: float) -> None:
        holder = f"{os.uname().nodename}:{os.getpid()}"
        while not self._stop.wait(seconds):
            try:
                stats = self.spool.stats()
                if (stats["predictions"] or stats["feedback"]) and self.spool.take_lease(holder):
                    self.drain_spool()
                    stats = self.spool.stats()
                self.metrics.spool_rows.set(stats["predictions"] + stats["feedback"])
                self.metrics.spool_oldest_age.set(stats["oldest_age_s"])
            except StoreError:
                continue  # the store is still away: the next round tries again
            except Exception:  # the drainer must never die quietly
                log.exception("spool drain failed; retrying")

    def final_drain(self, seconds: float = 5.0) -> None:
        """On shutdown: move what the spool holds to the store while it answers (bounded).

        What cannot be moved stays on disk for the next start; an emptyDir spool (k8s) would
        lose it with the pod, so a worker hands its rows over before it exits.
        """
        self._stop.set()
        holder = f"{os.uname().nodename}:{os.getpid()}"
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                stats = self.spool.stats()
                if not (stats["predictions"] or stats["feedback"]):
                    return
                if self.spool.take_lease(holder):
                    self.drain_spool()
                else:
                    time.sleep(0.1)
        except Exception as err:  # the store is away: the rows stay in the spool
            log.warning("spool not drained at shutdown, rows kept on disk: %s", err)

    def start_drainer(self, seconds: float | None = None) -> None:
        """Drain the spool from a background thread, every `seconds` (once per worker)."""
        if seconds is None:
            seconds = LOCAL_FIRST_DRAIN_SECONDS if self.local_first else DRAIN_SECONDS
        if self._drainer is None:
            self._drainer = threading.Thread(
                target=self._drain_loop, args=(seconds,), name="spool-drain", daemon=True
            )
            self._drainer.start()

    @classmethod
    def start(cls, config: dict) -> Runtime:
        """Load the bundles and open the store named by the configuration."""
        home = Path(config.get("CARPRICE_HOME") or home_dir())
        configured = config.get("AB_SHARE")
        share = parse_share(
            configured if configured is not None else os.environ.get("CARPRICE_AB_SHARE"),
            "AB_SHARE" if configured is not None else "CARPRICE_AB_SHARE",
        )
        store = open_store(home, config.get("DB_URL"), config.get("DB_PREFIX"))
        store.start_checkpointer()
        first = local_first(store)
        # Local-first rows stand in for a remote commit; they survive a killed process
        # (WAL, synchronous=NORMAL), as the SQLite store's rows do.
        spool = open_spool(home, "NORMAL" if first else "FULL")
        runtime = cls(home=home, store=store, spool=spool, local_first=first, ab_share=share)
        runtime.experiment_named = (
            config.get("EXPERIMENT_ID") or os.environ.get("CARPRICE_EXPERIMENT_ID") or None
        )
        runtime.start_drainer()
        runtime.load_champion(champion_path(home, config.get("BUNDLE")))
        runtime.load_challenger(challenger_path(home, config.get("CHALLENGER_BUNDLE")))
        return runtime

    def load_champion(self, path: Path | None) -> None:
        if path is None:
            self.refusal = "no model bundle configured (no --bundle and no deploy pointer)"
        else:
            try:
                self.champion = Predictor(load_bundle(path), compiled=True)
            except BundleError as err:
                self.refusal = f"bundle refused: {err}"
        if self.champion is None:
            log.error("not ready: %s", self.refusal)
            return
        self.metrics.model_info.labels("champion", self.champion.version).set(1)
        self.release = release_of(self.home, self.champion.version)
        log.info("serving model %s from %s", self.champion.version, path)

    def load_challenger(self, path: Path | None) -> None:
        if path is None:
            return
        try:
            self.challenger = Predictor(load_bundle(path), compiled=True)
        except Exception as err:  # a challenger must never stop the champion from serving
            log.error("challenger not loaded, serving without shadow model: %s", err)
            return
        self.metrics.model_info.labels("challenger", self.challenger.version).set(1)
        if self.ab_share > 0:
            self._join_experiment()
            log.info(
                "A/B: challenger %s from %s prices %.0f%% of keyed listings (experiment %s)",
                self.challenger.version,
                path,
                self.ab_share * 100,
                self.experiment_id or "none",
            )
        else:
            log.info("shadowing with challenger %s from %s", self.challenger.version, path)
