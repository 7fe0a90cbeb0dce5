"""The Flask app factory: `gunicorn -c serving/gunicorn.conf.py 'serving.app:create_app()'`."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from flask import Flask, g, request

from serving import auth, problems, routes
from serving.problems import Problem
from serving.runtime import Runtime

DEFAULTS = {
    "MAX_CONTENT_LENGTH": 1 << 20,  # 1 MiB: a full 1,000-listing batch needs about a quarter
    "BUNDLE": None,  # champion bundle directory; default: the deploy pointer
    "CHALLENGER_BUNDLE": None,  # shadow bundle directory; default: deploy/challenger
    "AB_SHARE": None,  # share of keyed listings the challenger prices; default $CARPRICE_AB_SHARE
    "EXPERIMENT_ID": None,  # the experiment record A/B serves; default $CARPRICE_EXPERIMENT_ID
    "CARPRICE_HOME": None,  # default: $CARPRICE_HOME or ./var
    "DB_URL": None,  # default: $CARPRICE_DB_URL or SQLite under CARPRICE_HOME
    "DB_PREFIX": None,  # table-name prefix; default: $CARPRICE_DB_PREFIX or none
    # Access (serving/auth.py); each default: $CARPRICE_<KEY>, else the value in brackets
    "ANONYMOUS_ESTIMATES": None,  # estimates without a key allowed [1]
    "KEY_CACHE_SECONDS": None,  # how long a worker trusts a key it checked [30]
    "ESTIMATES_PER_MINUTE": None,  # listings per minute, unless a client's own is set [60000]
    "FEEDBACK_PER_DAY": None,  # a client's quota unless its own is set [1000]
    "QUOTA_SYNC_SECONDS": None,  # estimate counts reach the store at least this often [0.2]
    "QUOTA_SYNC_REQUESTS": None,  # ... or after this many requests [20]
    # The probe listener (serving/gunicorn.conf.py): its port answers the probes and nothing else
    "PROBE_BIND": None,  # default: $CARPRICE_PROBE_BIND (none: the probes share the main port)
    # ... and the metrics listener's port answers /metrics only, which the main port then refuses
    "METRICS_BIND": None,  # default: $CARPRICE_METRICS_BIND (none: /metrics on the main port)
    "ANONYMOUS_LISTINGS_PER_MINUTE": None,  # anonymous listings per source address [1000]
    "ANONYMOUS_MAX_LISTINGS": None,  # listings in one anonymous request [100]
}
PROBES = ("/healthz", "/readyz")
METRICS = ("/metrics",)


def create_app(config: Mapping | None = None) -> Flask:
    """Build the app: load and verify the bundle, open the store, register the routes and
    the access checks."""
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config.update(config or {})
    problems.register(app)
    app.register_blueprint(routes.bp)
    runtime = Runtime.start(app.config)
    app.extensions["carprice"] = runtime
    _instrument(app, runtime)
    _own_listeners(app)
    auth.register(app, runtime.store)  # after the timer starts: refusals are timed too
    return app


def _instrument(app: Flask, runtime: Runtime) -> None:
    """Count and time every request; stamp the model version on every answer."""
    metrics = runtime.metrics

    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response):
        rule = request.url_rule
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        metrics.observe_request(
            rule.rule if rule is not None else "unmatched",
            request.method,
            response.status_code,
            seconds,
        )
        if runtime.champion is not None:
            response.headers["X-Model-Version"] = runtime.champion.version
        return response


def _port(bind: str | None) -> str | None:
    bind = (bind or "").strip()
    return bind.rsplit(":", 1)[-1] if bind else None


def _own_listeners(app: Flask) -> None:
    """Answer only the probes on the probe listener's port and only /metrics on the metrics
    listener's (404 for anything else there); with a metrics listener, the other ports refuse
    /metrics, so the estimate port tells nothing about the traffic."""
    own = {}
    for key, paths, name in (("PROBE_BIND", PROBES, "probe"), ("METRICS_BIND", METRICS, "metrics")):
        port = _port(app.config[key] or os.environ.get(f"CARPRICE_{key}"))
        if port:
            own[port] = (paths, f"the {name} port answers {' and '.join(paths)} only")
    if not own:
        return
    metrics_elsewhere = any(paths == METRICS for paths, _ in own.values())

    @app.before_request
    def _own_paths_only():
        port = request.environ.get("SERVER_PORT")
        if port in own:
            paths, detail = own[port]
            if request.path not in paths:
                raise Problem(404, "Not Found", detail)
        elif metrics_elsewhere and request.path in METRICS:
            raise Problem(404, "Not Found", "/metrics is answered on the metrics port only")
