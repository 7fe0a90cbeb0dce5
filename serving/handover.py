"""Zero-downtime handover between two servers sharing one port (SO_REUSEPORT).

Every server attaches the same classic BPF program to its listening socket's reuseport group:
"hand the connection to socket 1". While a server is alone in the group, socket 1 does not exist
and the kernel falls back to its hash (the only socket). When a new server joins, it becomes
socket 1 and receives every new connection; the old server keeps accepting what was already
queued for it and can then stop without a single connection being reset. When the old socket
closes, the kernel moves the new one into slot 0, ready for the next handover.
"""

from __future__ import annotations

import ctypes
import socket

SO_ATTACH_REUSEPORT_CBPF = 51  # linux/asm-generic/socket.h
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return a constant


class _Instruction(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Instruction))]


def steer_to_newest(sock: socket.socket) -> None:
    """Make the newest of two listeners sharing `sock`'s port take every new connection."""
    instructions = (_Instruction * 1)(_Instruction(BPF_RET_K, 0, 0, 1))
    program = _Program(1, instructions)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(program))
