"""What a worker serves: the champion, the optional shadow challenger, the store and metrics.

The champion bundle is the one the configuration names, else the one the gunicorn master resolved
and verified (`CARPRICE_SERVE_BUNDLE`), else `CARPRICE_BUNDLE`, else the deploy pointer. A bundle
that fails verification is refused: the worker stays up, says why in its log and on `/readyz`,
and answers estimates with 503. A challenger that fails to load is only logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from carprice import deploy, treecode
from carprice.bundle import BundleError, load_bundle
from carprice.predictor import Predictor
from carprice.store import Store, default_url
from serving.metrics import Metrics

log = logging.getLogger("carprice.serving")


def default_home() -> Path:
    """Return CARPRICE_HOME, or ./var."""
    return Path(os.environ.get("CARPRICE_HOME") or Path.cwd() / "var").resolve()


def champion_path(home: Path, configured: str | os.PathLike | None = None) -> Path | None:
    """Return the bundle directory the champion comes from, or None when nothing names one."""
    for candidate in (
        configured,
        os.environ.get("CARPRICE_SERVE_BUNDLE"),
        os.environ.get("CARPRICE_BUNDLE"),
    ):
        if candidate:
            return Path(candidate).resolve()
    return deploy.read_pointer(home, deploy.CURRENT)


def challenger_path(home: Path, configured: str | os.PathLike | None = None) -> Path | None:
    """Return the shadow challenger's bundle directory, or None."""
    candidate = configured or os.environ.get("CARPRICE_CHALLENGER_BUNDLE")
    if candidate:
        return Path(candidate).resolve()
    return deploy.read_pointer(home, deploy.CHALLENGER)


def open_store(home: Path, url: str | None = None, prefix: str | None = None) -> Store:
    """Open the store (CARPRICE_DB_URL or SQLite under home) and create missing tables."""
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
    challenger: Predictor | None = None
    refusal: str | None = None

    @property
    def tree_cache(self) -> Path:
        """Where compiled tree scorers are cached (CARPRICE_TREE_CACHE or home/cache/trees)."""
        return treecode.cache_dir(self.home)

    @classmethod
    def start(cls, config: dict) -> Runtime:
        """Load the bundles and open the store named by the configuration."""
        home = Path(config.get("CARPRICE_HOME") or default_home())
        store = open_store(home, config.get("DB_URL"), config.get("DB_PREFIX"))
        store.start_checkpointer()
        runtime = cls(home=home, store=store)
        runtime.load_champion(champion_path(home, config.get("BUNDLE")))
        runtime.load_challenger(challenger_path(home, config.get("CHALLENGER_BUNDLE")))
        return runtime

    def load_champion(self, path: Path | None) -> None:
        if path is None:
            self.refusal = "no model bundle configured (no --bundle and no deploy pointer)"
        else:
            try:
                self.champion = Predictor(
                    load_bundle(path), compiled=True, tree_cache=self.tree_cache
                )
            except BundleError as err:
                self.refusal = f"bundle refused: {err}"
        if self.champion is None:
            log.error("not ready: %s", self.refusal)
            return
        self.metrics.model_info.labels("champion", self.champion.version).set(1)
        log.info("serving model %s from %s", self.champion.version, path)

    def load_challenger(self, path: Path | None) -> None:
        if path is None:
            return
        try:
            self.challenger = Predictor(
                load_bundle(path), compiled=True, tree_cache=self.tree_cache
            )
        except Exception as err:  # a challenger must never stop the champion from serving
            log.error("challenger not loaded, serving without shadow model: %s", err)
            return
        self.metrics.model_info.labels("challenger", self.challenger.version).set(1)
        log.info("shadowing with challenger %s from %s", self.challenger.version, path)
