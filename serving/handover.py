"""Zero-downtime handover between two servers sharing one port (SO_REUSEPORT).

A server started with CARPRICE_REUSE_PORT=1 binds its port with SO_REUSEPORT from the gunicorn
master, so each server is one socket in the port's reuseport group, shared by its workers. A
one-instruction classic BPF program attached to the group picks the socket for every new
connection:

- on binding, a server attaches "socket 0": the server already there keeps every new connection
  while the newcomer's workers load the model (alone in the group, the newcomer is socket 0);
- when all its workers are ready, the newcomer attaches "socket 1": itself. The old server then
  only finishes what it had accepted and can stop without a connection being reset. When its
  socket closes, the kernel moves the new one into slot 0 (an index past the group's end falls
  back to the kernel's hash, i.e. the only socket), ready for the next handover.
"""

from __future__ import annotations

import ctypes
import glob
import os
import socket

SO_ATTACH_REUSEPORT_CBPF = 51  # linux/asm-generic/socket.h
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return a constant
OLDEST, NEWEST = 0, 1


class _Instruction(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Instruction))]


def steer(sock: socket.socket, index: int) -> None:
    """Hand every new connection on `sock`'s port to socket `index` of its reuseport group."""
    instructions = (_Instruction * 1)(_Instruction(BPF_RET_K, 0, 0, index))
    program = _Program(1, instructions)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(program))


def shared_listeners(cfg, log) -> list:
    """Bind the configured TCP addresses with SO_REUSEPORT in the master; the server already on
    the port keeps the traffic for now. Returns gunicorn listeners for the arbiter."""
    from gunicorn import sock as gunicorn_sock

    fds = []
    for host, port in (a for a in cfg.address if isinstance(a, tuple)):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(cfg.backlog)
        steer(sock, OLDEST)
        fds.append(sock.detach())
    log.info("listening with SO_REUSEPORT; taking new connections once every worker is ready")
    return gunicorn_sock.create_sockets(cfg, log, fds)


def worker_ready(worker, folder: str) -> None:
    """Count this worker ready; the last of the first generation takes the port's traffic."""
    open(os.path.join(folder, f"ready-{os.getpid()}"), "w").close()
    taken = os.path.join(folder, "taken")
    ready = len(glob.glob(os.path.join(folder, "ready-*")))
    if ready >= worker.cfg.workers and not os.path.exists(taken):
        for listener in worker.sockets:  # gunicorn's listeners; plain sockets in a gevent worker
            steer(getattr(listener, "sock", listener), NEWEST)
        open(taken, "w").close()
        worker.log.info("all %d workers ready: new connections now come to this server", ready)
