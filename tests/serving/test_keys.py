"""Key checks are cheap and uniform: one HMAC under the pepper, caches that made-up keys cannot
flush, the same check for unknown, revoked and wrong keys, and a failed-attempt limit per
source address (serving/keys.py, serving/auth.py)."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from carprice.runtime import clients
from carprice.runtime.store import Store
from serving.keys import UNKNOWN_MAX, Keys
from tests.serving.conftest import add_client, golf

PEPPER = b"p" * 32


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.create()
    yield store
    store.dispose()


class Counted:
    """Count a function's calls, passing them on."""

    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


def random_key() -> str:
    return f"cp_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def test_a_flood_of_random_keys_does_not_push_a_real_key_out_of_the_cache(store, monkeypatch):
    real = add_client(store, "real")
    keys = Keys(store, ttl=600, pepper=clients.pepper(store))
    lookups = Counted(store.client_by_key_id)
    monkeypatch.setattr(store, "client_by_key_id", lookups)
    assert keys.client(real).name == "real" and lookups.calls == 1
    flood = [random_key() for _ in range(UNKNOWN_MAX + 500)]
    assert all(keys.client(k) is None for k in flood)
    assert lookups.calls == 1 + len(flood)
    assert keys.client(real).name == "real"
    assert lookups.calls == 1 + len(flood)  # answered from the cache: no lookup, no HMAC
    assert len(keys._unknown) == UNKNOWN_MAX  # bounded, least recently used gone first
    keys.client(flood[-1])  # a recent unknown id is answered without a lookup
    assert lookups.calls == 1 + len(flood)
    keys.client(flood[0])  # the oldest was pushed out, not the whole cache cleared
    assert lookups.calls == 2 + len(flood)


def test_unknown_revoked_and_wrong_keys_each_run_one_hmac(store, monkeypatch):
    live = add_client(store, "live")
    gone = add_client(store, "gone")
    store.revoke_client("gone")
    key_id, secret = clients.parse_key(live)
    other = "A" if not secret.startswith("A") else "B"
    tries = {
        "unknown": f"cp_{'0' * 12}_{secret}",
        "revoked": gone,
        "wrong": f"cp_{key_id}_{other}{secret[1:]}",
    }
    keys = Keys(store, ttl=600, pepper=clients.pepper(store))
    for name, key in tries.items():
        hmacs = Counted(clients.digest)
        scrypts = Counted(hashlib.scrypt)
        monkeypatch.setattr(clients, "digest", hmacs)
        monkeypatch.setattr(clients.hashlib, "scrypt", scrypts)
        assert keys.client(key) is None, name
        assert (hmacs.calls, scrypts.calls) == (1, 0), name
    monkeypatch.undo()
    assert keys.client(live).name == "live"  # the same check lets the right secret through


def test_a_key_made_before_the_pepper_still_verifies_by_its_scrypt_hash(store):
    secret, salt = secrets.token_urlsafe(32), secrets.token_hex(16)
    made = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), n=2**12, r=8, p=1, dklen=32)
    row = {"key_scheme": "scrypt", "key_salt": salt, "key_hash": made.hex()}
    assert clients.verify(secret, row, PEPPER)
    assert not clients.verify(secret[:-1] + "x", row, PEPPER)
    hmac_row = {"key_scheme": "hmac", "key_salt": "", "key_hash": clients.digest(secret, PEPPER)}
    assert clients.verify(secret, hmac_row, PEPPER)
    assert not clients.verify(secret, hmac_row, b"q" * 32)  # another pepper: no match


def test_a_shared_store_refuses_keys_without_a_pepper(monkeypatch):
    monkeypatch.delenv(clients.PEPPER_SETTING, raising=False)

    class Shared:
        is_sqlite = False

    with pytest.raises(ValueError, match="CARPRICE_KEY_PEPPER is not set"):
        clients.pepper(Shared())
    with pytest.raises(ValueError, match="at least 32 characters"):
        clients.pepper(Shared(), "short")
    assert clients.pepper(Shared(), "x" * 32) == b"x" * 32

    class Local:
        is_sqlite = True

    assert clients.pepper(Local()) == clients.DEVELOPMENT_PEPPER


def test_failed_key_checks_past_the_limit_get_429_from_that_address(bundle_dir, home):
    from serving.app import create_app

    url = f"sqlite:///{home / 'carprice.db'}"
    config = {"BUNDLE": bundle_dir, "CARPRICE_HOME": home, "DB_URL": url}
    app = create_app({**config, "KEY_FAILURES_PER_MINUTE": 3, "QUOTA_SYNC_REQUESTS": 1})
    try:
        web = app.test_client()
        good = add_client(app.extensions["carprice"].store, "good")
        body = {"listings": [golf()]}
        here = {"REMOTE_ADDR": "10.0.0.1"}
        for _ in range(3):
            answer = web.post(
                "/v1/estimates", json=body, headers={"X-API-Key": random_key()}, environ_base=here
            )
            assert answer.status_code == 403
        answer = web.post(
            "/v1/estimates", json=body, headers={"X-API-Key": random_key()}, environ_base=here
        )
        assert answer.status_code == 429 and 1 <= int(answer.headers["Retry-After"]) <= 60
        # the address is held for the minute, its good key too; another address is not
        late = web.post("/v1/estimates", json=body, headers={"X-API-Key": good}, environ_base=here)
        assert late.status_code == 429
        there = {"REMOTE_ADDR": "10.0.0.2"}
        answer = web.post(
            "/v1/estimates", json=body, headers={"X-API-Key": good}, environ_base=there
        )
        assert answer.status_code == 200
    finally:
        app.extensions["carprice"].store.dispose()


def test_the_service_will_not_check_keys_on_postgresql_without_a_pepper(pg_url, monkeypatch):
    from flask import Flask

    from serving import auth

    monkeypatch.delenv(clients.PEPPER_SETTING, raising=False)
    store = Store(pg_url, "unused_")  # no table is touched: the refusal comes first
    try:
        with pytest.raises(ValueError, match="CARPRICE_KEY_PEPPER is not set"):
            auth.register(Flask(__name__), store)
        with pytest.raises(ValueError, match="CARPRICE_KEY_PEPPER is not set"):
            clients.add_client(store, "nobody", "estimate")  # nor make one
    finally:
        store.dispose()
