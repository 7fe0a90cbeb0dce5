"""Serving fixtures: a small trained bundle (built once per session), the app and its client."""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path

import pytest

from carprice.runtime.bundle import write_bundle
from serving.examples import EXAMPLE_LISTING
from tests.conftest import skip_unless_required

POINT_ROUNDS, QUANTILE_ROUNDS = 200, 80
MIN_ROWS = 10  # clean rows a car model needs to be supported, as in params.yaml gate1


def golf(**overrides) -> dict:
    """Return one valid API listing (snake_case), with fields overridden."""
    return {**EXAMPLE_LISTING, **overrides}


@dataclasses.dataclass
class BundleFactory:
    """Write bundles of one small trained model under distinct versions."""

    root: Path
    model: object
    supported: list[tuple[str, str]]

    def __call__(self, version: str) -> Path:
        path = self.root / version
        if not path.exists():
            m = self.model
            write_bundle(
                path,
                boosters=m.boosters,
                spec=m.spec,
                supported=self.supported,
                interval=m.interval,
                metadata={"model_version": version, "lineage": {"source": "tests"}},
            )
        return path


@pytest.fixture(scope="session")
def make_bundle(tmp_path_factory, params, market_frame) -> BundleFactory:
    """Bundles of one model trained on a known source: the simulated market of `market_frame`
    (a fixed seed), never on whatever data/ holds in this checkout."""
    from carprice.model.train import TrainParams, split_of, train

    frame = market_frame
    tp = TrainParams.from_params(params["train"])
    tp = dataclasses.replace(tp, num_boost_round=POINT_ROUNDS, quantile_boost_round=QUANTILE_ROUNDS)
    model = train(frame, split_of(frame, tp.test_share, tp.calibration_share), tp)
    counts = frame.groupby(["make", "model"]).size()
    supported = [key for key, n in counts.items() if n >= MIN_ROWS]
    return BundleFactory(tmp_path_factory.mktemp("bundles"), model, supported)


@pytest.fixture(scope="session")
def tree_extension():
    """Return the compiled tree scorer extension; fail, naming the fix, when it was not built."""
    try:
        from carprice.runtime import _treescore
    except ImportError as err:
        pytest.fail(
            f"carprice.runtime._treescore is not built ({err}): run "
            "`.venv/bin/pip install --no-deps -e .` with gcc and the Python headers installed"
        )
    return _treescore


@pytest.fixture(scope="session")
def bundle_dir(make_bundle) -> Path:
    return make_bundle("test-1")


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def app(bundle_dir, home):
    from serving.app import create_app

    url = f"sqlite:///{home / 'carprice.db'}"
    app = create_app({"BUNDLE": bundle_dir, "CARPRICE_HOME": home, "DB_URL": url})
    yield app
    app.extensions["carprice"].store.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def add_client(store, name: str = "tests", scopes: str = "estimate,feedback", **quotas) -> str:
    """Add an API client to a store (as `carprice clients add` does); return its key."""
    from carprice.runtime import clients

    store.create()
    return clients.add_client(store, name, scopes, **quotas)


# A served process under test load takes it from one address without a key; the anonymous
# limits have their own tests (tests/reliability/test_auth.py, test_estimates_api.py).
ONE_ADDRESS_LOAD = {
    "CARPRICE_ANONYMOUS_LISTINGS_PER_MINUTE": "100000000",
    "CARPRICE_ANONYMOUS_MAX_LISTINGS": "1000",
}
PIPELINE = "estimate,feedback,feedback:all"  # a sales pipeline's: feedback on any estimate


def url_key(url: str, name: str = "tests", scopes: str = PIPELINE, **quotas) -> str:
    """Add an API client to the store at `url` (by default one that may post feedback on any
    estimate, the anonymous ones the tests make included); return its key."""
    from carprice.runtime.store import Store

    store = Store(url)
    try:
        return add_client(store, name, scopes, **quotas)
    finally:
        store.dispose()


def home_key(home: Path, name: str = "tests", scopes: str = PIPELINE, **quotas) -> str:
    """Add an API client to the SQLite store under a service's home; return its key."""
    return url_key(f"sqlite:///{Path(home) / 'carprice.db'}", name, scopes, **quotas)


def with_key(client, name: str = "tests", scopes: str = "estimate,feedback", **options):
    """Make a Flask test client send a new API key of its app's store on every request
    (`options`: add_client's quotas and kind)."""
    key = add_client(client.application.extensions["carprice"].store, name, scopes, **options)
    client.environ_base["HTTP_X_API_KEY"] = key
    return client


@pytest.fixture
def keyed_client(app):
    """A test client that sends an API key with scopes estimate and feedback."""
    return with_key(app.test_client())


PG_URL = os.environ.get("CARPRICE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_url() -> str:
    """Return the PostgreSQL URL, creating its database when absent.

    Without a server the test is skipped, except under CARPRICE_REQUIRE_PG=1 (CI), where it fails.
    """
    try:
        ensure_database(PG_URL)
    except Exception as err:  # the driver's connection errors differ by cause
        reason = f"PostgreSQL unreachable at {PG_URL}: {str(err).splitlines()[0]}"
        skip_unless_required("CARPRICE_REQUIRE_PG", reason)
    return PG_URL


def ensure_database(url: str) -> None:
    """Create the database `url` names when the server has none of that name."""
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": target.database},
            ).scalar()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> tuple[str, str]:
    """Yield (url, table prefix) for each engine; PostgreSQL tables are dropped afterwards."""
    from carprice.runtime.store import Store

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}", ""
        return
    url = request.getfixturevalue("pg_url")
    prefix = f"t{os.getpid()}_{uuid.uuid4().hex[:8]}_"
    yield url, prefix
    store = Store(url, prefix)
    store.drop()
    store.dispose()
