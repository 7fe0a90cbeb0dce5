"""Who may call what: API keys, scopes and per-client quotas, checked before every request.

A key comes as `Authorization: Bearer <key>` or `X-API-Key: <key>` (see carprice.runtime.clients).
`POST /v1/feedback` needs a key with scope `feedback`; `POST /v1/estimates` one with scope
`estimate`, or none while anonymous estimates are allowed (CARPRICE_ANONYMOUS_ESTIMATES, default
1); `GET /v1/model` tells anonymous callers the version only. No key where one is needed: 401.
A wrong, revoked or out-of-scope key: 403, with one detail text for all three. `flask.g.client`
holds the client's name for the request (None when anonymous), `flask.g.all_feedback` whether
it holds scope `feedback:all` (feedback on any prediction, not only its own: serving/routes.py).

Keys are checked by one HMAC under CARPRICE_KEY_PEPPER (serving/keys.py, carprice.runtime.clients);
each worker keeps verified keys, and unknown key ids apart, for CARPRICE_KEY_CACHE_SECONDS
(default 30): a revocation takes effect within that time. While the store does not answer, a key
verified before keeps its client; any other key gets 503 (Retry-After), or is answered as
anonymous on estimates while those are allowed. Failed key checks count against their source
address: past CARPRICE_KEY_FAILURES_PER_MINUTE (100) an address gets 429 with Retry-After for
every keyed call until the minute ends, before its key is looked at.

Quotas (serving/quotas.py): a client's own, else CARPRICE_ESTIMATES_PER_MINUTE (60000 listings) and
CARPRICE_FEEDBACK_PER_DAY (1000); estimate counts reach the store every CARPRICE_QUOTA_SYNC_SECONDS
(0.2) or CARPRICE_QUOTA_SYNC_REQUESTS (20). Estimates count listings, once the body is read
(`admit_listings`, called by the route). Anonymous estimates count against their source address,
CARPRICE_ANONYMOUS_LISTINGS_PER_MINUTE (1000) each and exactly, and may send at most
CARPRICE_ANONYMOUS_MAX_LISTINGS (100) per request.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from flask import Flask, current_app, g, request

from carprice.runtime import clients
from carprice.runtime.store import Store, StoreError
from serving.keys import Keys
from serving.problems import Problem, field_error
from serving.quotas import Quotas

log = logging.getLogger("carprice.serving")
SCOPE_OF = {"carprice.estimates": "estimate", "carprice.feedback": "feedback"}
MODEL_INFO = "carprice.model_info"
REFUSED = "the API key is not valid for this operation"  # wrong, revoked or out of scope alike
FAILURES = "failed key checks per minute from this address"


def _setting(config, name: str, default: str) -> str:
    value = config.get(name)
    return str(value if value is not None else os.environ.get(f"CARPRICE_{name}") or default)


def _number(config, name: str, default, kind=int):
    text = _setting(config, name, str(default))
    try:
        value = kind(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"CARPRICE_{name} must be a number >= 0, got {text!r}")
    return value


@dataclass(frozen=True)
class AuthConfig:
    """The access settings: app config keys, else CARPRICE_<KEY> variables, else defaults."""

    anonymous_estimates: bool = True
    key_cache_seconds: float = 30.0
    estimates_per_minute: int = clients.DEFAULT_ESTIMATES_PER_MINUTE
    feedback_per_day: int = clients.DEFAULT_FEEDBACK_PER_DAY
    quota_sync_seconds: float = 0.2
    quota_sync_requests: int = 20
    anonymous_listings_per_minute: int = 1_000  # per source address
    anonymous_max_listings: int = 100  # per request
    key_failures_per_minute: int = 100  # failed key checks per source address
    key_pepper: str = field(default="", repr=False)  # CARPRICE_KEY_PEPPER (clients.pepper)

    @classmethod
    def from_config(cls, config) -> AuthConfig:
        anonymous = _setting(config, "ANONYMOUS_ESTIMATES", "1").lower()
        if anonymous not in ("0", "1", "true", "false"):
            raise ValueError(f"CARPRICE_ANONYMOUS_ESTIMATES must be 0 or 1, got {anonymous!r}")
        return cls(
            anonymous_estimates=anonymous in ("1", "true"),
            key_cache_seconds=_number(config, "KEY_CACHE_SECONDS", 30.0, float),
            estimates_per_minute=_number(
                config, "ESTIMATES_PER_MINUTE", clients.DEFAULT_ESTIMATES_PER_MINUTE
            ),
            feedback_per_day=_number(config, "FEEDBACK_PER_DAY", clients.DEFAULT_FEEDBACK_PER_DAY),
            quota_sync_seconds=_number(config, "QUOTA_SYNC_SECONDS", 0.2, float),
            quota_sync_requests=max(1, _number(config, "QUOTA_SYNC_REQUESTS", 20)),
            anonymous_listings_per_minute=_number(config, "ANONYMOUS_LISTINGS_PER_MINUTE", 1_000),
            anonymous_max_listings=max(1, _number(config, "ANONYMOUS_MAX_LISTINGS", 100)),
            key_failures_per_minute=max(1, _number(config, "KEY_FAILURES_PER_MINUTE", 100)),
            key_pepper=_setting(config, "KEY_PEPPER", ""),
        )

    @property
    def default_limits(self) -> dict[str, int]:
        return {"estimate": self.estimates_per_minute, "feedback": self.feedback_per_day}


def presented_key() -> str | None:
    """Return the key the request carries (Bearer or X-API-Key), None without one.

    Both headers with different keys are refused like a wrong key.
    """
    bearer = None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Problem(403, "Forbidden", REFUSED)
        bearer = value.strip()
    api_key = request.headers.get("X-API-Key")
    api_key = api_key.strip() if api_key is not None else None
    if bearer is not None and api_key is not None and bearer != api_key:
        raise Problem(403, "Forbidden", REFUSED)
    return bearer or api_key or None


def _unauthorized(what: str) -> Problem:
    return Problem(
        401,
        "Unauthorized",
        f"{what} needs an API key (Authorization: Bearer <key>, or X-API-Key)",
        headers={"WWW-Authenticate": 'Bearer realm="carprice"'},
    )


def register(app: Flask, store: Store) -> AuthConfig:
    """Check keys, scopes and quotas before each request; return the settings in force."""
    config = AuthConfig.from_config(app.config)
    keys = Keys(store, config.key_cache_seconds, clients.pepper(store, config.key_pepper))
    quotas = Quotas(store, config.quota_sync_seconds, config.quota_sync_requests)
    limits = config.default_limits
    app.extensions["carprice.auth"] = config
    app.extensions["carprice.quotas"] = quotas

    @app.before_request
    def _authenticate():
        g.client, g.all_feedback, g.estimate_limit = None, False, None
        endpoint = request.endpoint
        scope = SCOPE_OF.get(endpoint)
        if scope is None and endpoint != MODEL_INFO:
            return None  # health, metrics and docs are open (the network policy limits them)
        key = presented_key()
        if key is None:
            if scope == "feedback" or (scope == "estimate" and not config.anonymous_estimates):
                raise _unauthorized(f"{request.method} {request.path}")
            return None  # anonymous: estimates (as configured) and the model's version
        address = _address()
        failures = config.key_failures_per_minute
        _refuse_over(
            failures,
            FAILURES,
            quotas.used_up(address, clients.KEY_FAILURES, failures),
        )
        try:
            client = keys.client(key)
        except StoreError as err:
            log.error("cannot verify an API key, store unavailable: %s", err)
            if scope == "estimate" and config.anonymous_estimates:
                return None  # answered as anonymous: an unchecked key grants nothing more
            raise Problem(
                503,
                "Service Unavailable",
                "cannot verify the API key now; retry later",
                headers={"Retry-After": "5"},
            ) from None
        if client is None:
            _refuse_over(
                failures,
                FAILURES,
                quotas.admit(address, clients.KEY_FAILURES, failures, exact=True),
            )
        if client is None or (scope is not None and scope not in client.scopes):
            raise Problem(403, "Forbidden", REFUSED)
        g.client, g.all_feedback = client.name, clients.ALL_FEEDBACK in client.scopes
        if scope == "estimate":  # counted by its listings once the body is read
            g.estimate_limit = client.limit(scope, limits)
        elif scope is not None:
            limit = client.limit(scope, limits)
            _refuse_over(
                limit, "feedback posts per day", quotas.admit(client.name, scope, limit, True)
            )
        return None

    return config


def _address() -> str:
    """The quota counter name of the request's source address."""
    return f"address:{request.remote_addr or '-'}"


def _refuse_over(limit: int, what: str, retry_after: int | None) -> None:
    if retry_after is not None:
        raise Problem(
            429,
            "Too Many Requests",
            f"quota of {limit} {what} used up; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


def admit_listings(n: int) -> None:
    """Count an estimate request's `n` listings against its caller's quota: the client's, or
    for an anonymous call its source address's (exactly, with the smaller batch limit); raise
    429 past the quota, then 400 naming `listings` past the anonymous batch limit."""
    config, quotas = (
        current_app.extensions["carprice.auth"],
        current_app.extensions["carprice.quotas"],
    )
    limit = g.get("estimate_limit")
    if limit is not None:
        _refuse_over(
            limit, "listings per minute", quotas.admit(g.client, "estimate", limit, amount=n)
        )
        return
    limit = config.anonymous_listings_per_minute
    address = _address()
    _refuse_over(
        limit,
        "anonymous listings per minute from this address",
        quotas.admit(address, "estimate", limit, exact=True, amount=n),
    )
    if n > config.anonymous_max_listings:
        raise Problem(
            400,
            "Bad Request",
            f"an anonymous request may hold at most {config.anonymous_max_listings} listings; "
            "send an API key for more",
            [
                field_error(
                    "listings",
                    f"at most {config.anonymous_max_listings} without an API key, got {n}",
                )
            ],
        )
