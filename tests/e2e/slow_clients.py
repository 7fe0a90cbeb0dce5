"""A bounded slow-client attack on a running service, with a normal client and a readiness poller.

    python -m tests.e2e.slow_clients PORT [--probe-port P] [--connections 64] [--seconds 30]

`attack` holds `connections` connections to 127.0.0.1:PORT for `seconds`, each sending a request
line and then one header byte every `interval` seconds and never finishing its headers (a
connection the server closes is opened again). Meanwhile a normal client posts one-listing
estimates one after the other on fresh connections, and `/readyz` is polled every half second on
PORT and, when given, on PROBE_PORT. Everything stops by itself at the deadline; the figures come
back as a dict (and are printed as JSON from the command line).
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import threading
import time

from serving.examples import EXAMPLE_LISTING

BODY = json.dumps({"listings": [EXAMPLE_LISTING]})


def _open(port: int) -> socket.socket | None:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=1)
        sock.sendall(b"POST /v1/estimates HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sock.setblocking(False)
        return sock
    except OSError:
        return None


def _slow(port: int, connections: int, interval: float, until: float, out: dict) -> None:
    """Keep `connections` slow connections open until `until`; count the (re)openings."""
    socks = [_open(port) for _ in range(connections)]
    out["opened"] = sum(s is not None for s in socks)
    while time.monotonic() < until:
        time.sleep(min(interval, max(until - time.monotonic(), 0)))
        for i, sock in enumerate(socks):
            try:
                if sock is None:
                    raise OSError
                sock.send(b"a")
            except OSError:
                if sock is not None:
                    sock.close()
                socks[i] = _open(port)
                out["reopened"] += 1
    out["open_at_end"] = sum(s is not None for s in socks)
    for sock in socks:
        if sock is not None:
            sock.close()


def _request(port: int, method: str, path: str, body: str | None) -> tuple[int, float]:
    """One request on a fresh connection: (status or 0 on failure, seconds)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        headers = {"Content-Type": "application/json"} if body else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        status = response.status
    except OSError:
        status = 0
    finally:
        conn.close()
    return status, time.perf_counter() - started


def _repeat(port, method, path, body, pause, until, out: list) -> None:
    while time.monotonic() < until:
        out.append(_request(port, method, path, body))
        time.sleep(pause)


def _summary(calls: list[tuple[int, float]]) -> dict:
    times = sorted(seconds for _, seconds in calls)
    ok = [seconds for status, seconds in calls if status == 200]
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))] if times else None
    return {
        "calls": len(calls),
        "ok": len(ok),
        "failed": len(calls) - len(ok),
        "p99_ms": None if p99 is None else round(p99 * 1000, 1),
        "max_ms": round(times[-1] * 1000, 1) if times else None,
    }


def attack(
    port: int,
    probe_port: int | None = None,
    connections: int = 64,
    interval: float = 5.0,
    seconds: float = 30.0,
) -> dict:
    """Run the slow clients, the normal client and the readiness poller; return the figures."""
    until = time.monotonic() + seconds
    slow = {"opened": 0, "reopened": 0, "open_at_end": 0}
    estimates: list = []
    ready: list = []
    ready_probe: list = []
    threads = [
        threading.Thread(target=_slow, args=(port, connections, interval, until, slow)),
        threading.Thread(
            target=_repeat, args=(port, "POST", "/v1/estimates", BODY, 0.02, until, estimates)
        ),
        threading.Thread(target=_repeat, args=(port, "GET", "/readyz", None, 0.5, until, ready)),
    ]
    if probe_port:
        threads.append(
            threading.Thread(
                target=_repeat, args=(probe_port, "GET", "/readyz", None, 0.5, until, ready_probe)
            )
        )
    threads[0].start()
    time.sleep(min(1.0, seconds / 10))
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    figures = {"slow": slow, "estimates": _summary(estimates), "readyz": _summary(ready)}
    if probe_port:
        figures["readyz_probe_port"] = _summary(ready_probe)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--probe-port", type=int)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    figures = attack(args.port, args.probe_port, args.connections, args.interval, args.seconds)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
