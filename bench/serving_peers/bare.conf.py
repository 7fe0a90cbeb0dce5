"""gunicorn settings of the bare peer: the product's worker model, nothing else."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
bind = os.environ.get("BARE_BIND", "127.0.0.1:8100")
workers = int(os.environ.get("BARE_WORKERS") or os.cpu_count() or 1)
worker_class = os.environ.get("CARPRICE_WORKER_CLASS", "gevent")  # the same knobs as the product
threads = int(os.environ.get("CARPRICE_THREADS") or 1)
timeout = 30
keepalive = 5
control_socket_disable = True
