"""gunicorn settings for the carprice service.

    gunicorn -c serving/gunicorn.conf.py 'serving.app:create_app()'

Environment: CARPRICE_BIND (default 0.0.0.0:8000; several addresses comma-separated),
CARPRICE_REUSE_PORT=1 (share the port with the next release's server: serving/handover.py),
CARPRICE_IMAGE_ID (the id of the running image, reported by GET /v1/model),
CARPRICE_PROBE_BIND (an address of its own for /healthz and /readyz, say 0.0.0.0:8001: it answers
nothing else and estimate traffic cannot take its connections), CARPRICE_METRICS_BIND (an address
of its own for /metrics, say 0.0.0.0:8002: it answers nothing else and the other addresses then
refuse /metrics, so a network policy can open it to Prometheus alone), CARPRICE_WORKERS (default:
one per core), CARPRICE_WORKER_CLASS (default serving.workers.GeventWorker, gevent's: see
"Slow clients" below; CARPRICE_THREADS for gthread),
CARPRICE_ACCESS_LOG=1 (access lines on stdout), CARPRICE_BUNDLE (serve this bundle instead of the
deploy pointer), CARPRICE_HOME, CARPRICE_DB_URL, CARPRICE_DRAIN_SECONDS (default 0: after
SIGTERM a worker answers /readyz with 503 and keeps serving this long, so a load balancer stops
sending before the socket closes; it must stay below graceful_timeout).

The master resolves and verifies the bundle before any worker starts, and again on SIGHUP: a
refused bundle stops the start (with the reason in the log); on reload it leaves the previous
bundle serving. Workers load exactly the bundle the master verified (CARPRICE_SERVE_BUNDLE), so
all workers of one generation serve one model.
"""

import os

bind = [b.strip() for b in os.environ.get("CARPRICE_BIND", "0.0.0.0:8000").split(",") if b.strip()]
probe_bind = os.environ.get("CARPRICE_PROBE_BIND", "").strip()  # bound on starting: _listen
metrics_bind = os.environ.get("CARPRICE_METRICS_BIND", "").strip()  # likewise
# CARPRICE_REUSE_PORT=1: the production handover (serving/handover.py) - a new container binds the
# same port beside the old one and takes every new connection once its workers are ready. The
# master binds (one socket per server); gunicorn's own reuse_port would bind one per worker.
handover = os.environ.get("CARPRICE_REUSE_PORT") == "1"
workers = int(os.environ.get("CARPRICE_WORKERS") or os.cpu_count() or 1)
# Slow clients: a gevent worker (serving/workers.py) holds each connection in a greenlet of a
# pool of its own per listener (worker_connections), so a connection that sends its request a
# byte at a time holds no worker, and the probe listener keeps its pool whatever the estimate
# port gets. An async worker also bounds the wait for a request's line and headers by
# `keepalive` (5 s, idle keep-alive connections alike): a client slower than that is
# disconnected. A sync worker blocks on the socket with no read timeout (`timeout` only restarts
# a worker stuck for 30 s).
worker_class = os.environ.get("CARPRICE_WORKER_CLASS", "serving.workers.GeventWorker")
worker_connections = 1000
threads = int(os.environ.get("CARPRICE_THREADS") or 1)  # gthread only
timeout = 30
graceful_timeout = 30
keepalive = 5
proc_name = "carprice"
control_socket_disable = True
accesslog = "-" if os.environ.get("CARPRICE_ACCESS_LOG") else None
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
logger_class = "serving.logs.JsonLogger"
# Request limits (the body limit, 1 MiB, is the app's MAX_CONTENT_LENGTH): a request line or a
# header over 8 KiB, or more than 50 headers, is refused by gunicorn before the app sees it.
limit_request_line = 8190
limit_request_fields = 50
limit_request_field_size = 8190
preload_app = False  # the app (LightGBM, OpenMP, store connections) is loaded after fork
drain_seconds = float(os.environ.get("CARPRICE_DRAIN_SECONDS") or 0)


def _environment(server):
    """One LightGBM thread per worker, and a fresh directory for multiprocess metrics."""
    import glob
    import tempfile

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for stale in glob.glob(os.path.join(folder, "*.db")):
            os.remove(stale)
    else:
        folder = tempfile.mkdtemp(prefix="carprice-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        os.environ["CARPRICE_METRICS_TMP"] = folder  # ours to remove on exit


def _load_elsewhere(path) -> None:
    """Load the bundle as a worker does, in a child process: checksums are not enough (a
    truncated model, a feature-list mismatch with recomputed checksums, tree-scorer tables that
    point outside themselves), and LightGBM must not run in the master, whose forked workers
    would inherit its OpenMP state."""
    import subprocess
    import sys

    from carprice.runtime.bundle import BundleError

    code = (
        "import sys\n"
        "from carprice.runtime.bundle import BundleError, load_bundle\n"
        "from carprice.runtime.predictor import Predictor\n"
        "try:\n    Predictor(load_bundle(sys.argv[1]), compiled=True)\n"
        "except BundleError as err:\n    sys.exit(str(err))\n"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as err:
        raise BundleError(f"{path}: loading took over {err.timeout} s") from None
    if result.returncode != 0:
        lines = (result.stderr or "").strip().splitlines()
        raise BundleError(lines[-1] if lines else f"{path}: cannot load (exit {result.returncode})")


def _resolve_and_verify(server, starting):
    """Verify the bundle to serve and hand it to the workers; return False if refused."""
    from carprice.runtime import pointer
    from carprice.runtime.bundle import BundleError, verify_bundle
    from carprice.runtime.home import home_dir

    explicit = os.environ.get("CARPRICE_BUNDLE")
    path = explicit or pointer.read_pointer(home_dir(), pointer.CURRENT)
    previous = os.environ.get("CARPRICE_SERVE_BUNDLE")
    try:
        if path is None:
            raise BundleError("no bundle: pass --bundle DIR or set the deploy pointer")
        verify_bundle(path)
        _load_elsewhere(path)
    except BundleError as err:
        if starting:
            server.log.error("bundle refused, not starting: %s", err)
        else:
            server.log.error("bundle refused on reload, still serving %s: %s", previous, err)
        return False
    os.environ["CARPRICE_SERVE_BUNDLE"] = str(path)
    server.log.info("bundle verified: %s", path)
    return True


def on_starting(server):
    _environment(server)
    _mark_shutdown(server)
    if not _resolve_and_verify(server, starting=True):
        raise SystemExit(3)
    from carprice.runtime.home import home_dir
    from carprice.runtime.store import SchemaOutdated
    from serving.runtime import open_spool, open_store

    home = home_dir()
    try:
        open_store(home).dispose()  # tables exist before several workers open the store
    except SchemaOutdated as err:
        server.log.error("not starting: %s", err)
        raise SystemExit(3) from None
    open_spool(home).close()  # the spool file exists, in WAL mode, before the workers open it
    if handover:
        import tempfile

        os.environ["CARPRICE_HANDOVER_DIR"] = tempfile.mkdtemp(prefix="carprice-handover-")
    _listen(server)


def _listen(server):
    """Bind the listeners in the master: the probe and metrics listeners beside CARPRICE_BIND or
    --bind, and every one with SO_REUSEPORT for the handover. The configured `bind` is left as it
    was, so a reload (which reads it again and rebinds if it changed) keeps these listeners."""
    own = [b for b in (probe_bind, metrics_bind) if b]
    if not (own or handover):
        return  # the arbiter binds
    from gunicorn import sock

    from serving.handover import shared_listeners

    configured = server.cfg.bind
    extra = [b for b in own if b not in configured]
    if extra:
        server.cfg.set("bind", [*configured, *extra])
    try:
        make = shared_listeners if handover else sock.create_sockets
        server.LISTENERS = make(server.cfg, server.log)
    finally:
        server.cfg.set("bind", configured)


def _shutdown_flag() -> str:
    return os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "shutting-down")


def _mark_shutdown(server):
    """Let workers tell a shutdown (drain) from a reload retiring them (no drain needed)."""
    flag = _shutdown_flag()
    if os.path.exists(flag):
        os.remove(flag)
    handle_term = server.handle_term

    def on_master_term():
        with open(flag, "w"):
            pass
        handle_term()

    server.handle_term = on_master_term  # the arbiter looks its handlers up per signal


def post_worker_init(worker):
    """On SIGTERM: readiness 503 at once; on shutdown keep serving `drain_seconds`; exit."""
    import contextlib
    import signal
    import threading

    runtime = getattr(worker.wsgi, "extensions", {}).get("carprice")
    drain = min(drain_seconds, max(graceful_timeout - 5, 0))

    def stop_accepting():
        worker.alive = False
        with contextlib.suppress(OSError):  # wake the worker's select() so it notices at once
            os.write(worker.PIPE[1], b".")

    def on_term(signum, frame):
        if runtime is not None:
            runtime.draining = True
        if drain > 0 and os.path.exists(_shutdown_flag()):
            threading.Timer(drain, stop_accepting).start()
        else:
            worker.alive = False

    signal.signal(signal.SIGTERM, on_term)
    if handover:
        from serving.handover import worker_ready

        worker_ready(worker, os.environ["CARPRICE_HANDOVER_DIR"])


def worker_exit(server, worker):
    """Hand the spool's rows to the store before the worker goes (bounded; kept otherwise)."""
    runtime = getattr(worker.wsgi, "extensions", {}).get("carprice")
    if runtime is not None and runtime.spool is not None:
        runtime.final_drain()


def on_reload(server):
    _resolve_and_verify(server, starting=False)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    import shutil

    folder = os.environ.get("CARPRICE_METRICS_TMP")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
