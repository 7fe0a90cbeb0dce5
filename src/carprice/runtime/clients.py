"""Client API keys: generation, hashing, verification, scopes, quota windows, registration.

A key reads `cp_<id>_<secret>`: the id (12 hex digits) names one row of the `clients` table, so
a check is one lookup; the secret (43 url-safe characters, 256 random bits) proves the caller
holds the key. The store keeps the id and HMAC-SHA256(pepper, secret) only, so the key is shown
once, when it is made, and a copy of the table does not give it away. The secret's 256 bits make
guessing hopeless whatever the hash costs, so the check is one HMAC (microseconds): a flood of
wrong keys cannot tie up the workers. The pepper (CARPRICE_KEY_PEPPER, at least 32 characters)
stays outside the store; without it a copy of the table cannot even be checked against a key.
A SQLite store (one machine: development, tests, gate 3) may run without it on a fixed,
public development pepper; any other store refuses to make or check keys without it.

Keys made before the pepper (store revision 0004) keep their scrypt hash (`key_scheme`
`scrypt`) and are still checked that way: re-hashing them on use would need the service to
write `clients`, the right least privilege takes away. Re-issue them (`carprice clients list`
shows the scheme).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

KEY_PREFIX = "cp"
ALL_FEEDBACK = "feedback:all"  # may post feedback on any prediction (a sales pipeline)
SCOPES = ("estimate", "feedback", ALL_FEEDBACK)
MARKET, SYNTHETIC = "market", "synthetic"  # a real caller; load tests, gate 3 and probes
KINDS = (MARKET, SYNTHETIC)
DEFAULT_ESTIMATES_PER_MINUTE = 60_000  # listings estimated per minute (a request holds 1-1,000)
DEFAULT_FEEDBACK_PER_DAY = 1_000  # feedback posts per UTC day
KEY_FAILURES = "key_failures"  # failed key checks, counted per source address
WINDOW_SECONDS = {"estimate": 60, "feedback": 86_400, KEY_FAILURES: 60}  # a window per scope
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_KEY_PATTERN = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})")
_SCRYPT = {"n": 2**12, "r": 8, "p": 1, "dklen": 32}  # keys made before revision 0004
HMAC, SCRYPT = "hmac", "scrypt"  # the `key_scheme` of a clients row
PEPPER_SETTING = "CARPRICE_KEY_PEPPER"
PEPPER_MIN_CHARS = 32
DEVELOPMENT_PEPPER = b"carprice development pepper: SQLite stores only"  # public, by design
# What an unknown id's secret is compared with: the check of an unknown, a revoked and a wrong
# key is the same one HMAC and one constant-time comparison.
_NO_DIGEST = "0" * 64


@dataclass(frozen=True)
class NewKey:
    """A freshly made key: the text to hand over once, and what the store keeps of it."""

    key: str
    key_id: str
    salt: str
    key_hash: str
    scheme: str = HMAC

    def row(self) -> dict:
        """The key's columns of a `clients` row."""
        return {
            "key_id": self.key_id,
            "key_salt": self.salt,
            "key_hash": self.key_hash,
            "key_scheme": self.scheme,
        }


@dataclass(frozen=True)
class Client:
    """A verified caller: its name, what it may call and its quotas (None: the default)."""

    name: str
    scopes: frozenset[str]
    estimates_per_minute: int | None = None
    feedback_per_day: int | None = None

    def limit(self, scope: str, defaults: dict[str, int]) -> int:
        """Return this client's quota for one scope, or the service's default."""
        own = self.estimates_per_minute if scope == "estimate" else self.feedback_per_day
        return defaults[scope] if own is None else own


def pepper(store, value: str | None = None) -> bytes:
    """Return the key pepper: `value`, else CARPRICE_KEY_PEPPER; without either, the public
    development pepper for a SQLite store, else raise ValueError naming the setting."""
    text = value if value else os.environ.get(PEPPER_SETTING, "")
    if not text:
        if store.is_sqlite:
            return DEVELOPMENT_PEPPER
        raise ValueError(
            f"{PEPPER_SETTING} is not set: a shared store's keys need a server-side pepper of at "
            f"least {PEPPER_MIN_CHARS} characters (e.g. `openssl rand -base64 33`), the same for "
            "the service and `carprice clients`"
        )
    if len(text) < PEPPER_MIN_CHARS:
        raise ValueError(f"{PEPPER_SETTING} must have at least {PEPPER_MIN_CHARS} characters")
    return text.encode()


def digest(secret: str, key_pepper: bytes) -> str:
    """Return the hex HMAC-SHA256 of a key's secret under the pepper."""
    return hmac.new(key_pepper, secret.encode(), hashlib.sha256).hexdigest()


def new_key(key_pepper: bytes) -> NewKey:
    """Make a key with a random id and secret, hashed under the pepper."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return NewKey(f"{KEY_PREFIX}_{key_id}_{secret}", key_id, "", digest(secret, key_pepper))


def parse_key(text: str) -> tuple[str, str] | None:
    """Return (id, secret) of a well-formed key, else None."""
    match = _KEY_PATTERN.fullmatch(text)
    return (match.group(1), match.group(2)) if match else None


def verify(secret: str, row: dict | None, key_pepper: bytes) -> bool:
    """Whether a secret matches a `clients` row's hash (None: an unknown id, never a match).

    An unknown id costs what a known one does: the secret's HMAC is compared, in constant time,
    with a digest no secret has. A revoked row is checked like a live one (the caller refuses
    it after). Only a key made before the pepper runs scrypt.
    """
    if row is not None and row.get("key_scheme") == SCRYPT:
        made = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(row["key_salt"]), **_SCRYPT)
        return hmac.compare_digest(made.hex(), row["key_hash"])
    expected = row["key_hash"] if row is not None else _NO_DIGEST
    return hmac.compare_digest(digest(secret, key_pepper), expected) and row is not None


def client_from_row(row: dict) -> Client:
    """Return the Client a `clients` row describes (`feedback:all` includes `feedback`)."""
    scopes = {s for s in row["scopes"].split(",") if s}
    return Client(
        name=row["name"],
        scopes=frozenset(scopes | ({"feedback"} if ALL_FEEDBACK in scopes else set())),
        estimates_per_minute=row["estimates_per_minute"],
        feedback_per_day=row["feedback_per_day"],
    )


def check_name(name: str) -> str:
    """Return a valid client name, else raise ValueError saying what a name may be."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"client name {name!r}: 1-64 characters, lower-case letters, digits, '.', '_', '-', "
            "starting with a letter or digit"
        )
    return name


def parse_scopes(text: str) -> tuple[str, ...]:
    """Return the scopes of a comma-separated list, else raise ValueError naming the bad one."""
    scopes = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not scopes:
        raise ValueError(f"--scopes: name at least one of {', '.join(SCOPES)}")
    for scope in scopes:
        if scope not in SCOPES:
            raise ValueError(f"--scopes: unknown scope {scope!r} (known: {', '.join(SCOPES)})")
    return scopes


def window(scope: str, now: float) -> tuple[int, int]:
    """Return the quota window holding `now` (epoch seconds): its start and the whole seconds
    until it ends (at least 1; what Retry-After says)."""
    length = WINDOW_SECONDS[scope]
    start = int(now // length) * length
    return start, max(1, math.ceil(start + length - now))


def add_client(
    store,
    name: str,
    scopes: tuple[str, ...] | str,
    estimates_per_minute: int | None = None,
    feedback_per_day: int | None = None,
    kind: str = MARKET,
) -> str:
    """Add a client to a store (carprice.runtime.store.Store); return its key, shown once.
    A `synthetic` client's traffic is left out of the monitor's judgement and of training."""
    scopes = parse_scopes(scopes if isinstance(scopes, str) else ",".join(scopes))
    if kind not in KINDS:
        raise ValueError(f"--kind: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    made = new_key(pepper(store))
    store.add_client(
        {
            "name": check_name(name),
            **made.row(),
            "scopes": ",".join(scopes),
            "estimates_per_minute": estimates_per_minute,
            "feedback_per_day": feedback_per_day,
            "kind": kind,
        }
    )
    return made.key


UNLIMITED = 10**9  # the quota of the release tooling's own clients (gate 3, load tests)


@contextmanager
def temporary_client(store, purpose: str, scopes: str = "estimate,feedback") -> Iterator[str]:
    """Add a synthetic client named `<purpose>-<8 hex>` for one job of the release tooling,
    yield its key and revoke it afterwards. Its quotas are unlimited: the job measures the
    service, not a caller's share of it. Its rows stay in the store, marked by its kind."""
    name = check_name(f"{purpose}-{secrets.token_hex(4)}")
    key = add_client(store, name, scopes, UNLIMITED, UNLIMITED, SYNTHETIC)
    try:
        yield key
    finally:
        store.revoke_client(name)
