"""A fixed-rate (open-loop, wrk2-style) HTTP/1.1 load generator with a precise scheduler.

``fixed_rate(port, rate, seconds)`` sends ``GET /`` on one keep-alive connection at exactly ``rate``
requests per second: request *i* is due at ``start + i / rate``; the thread sleeps until ~200 µs before
that instant and spins for the rest, so sends leave within a few µs of their schedule. Latency is
measured from the *scheduled* time to the last byte of the response (so a slow response that delays the
next request is charged to it too — no coordinated omission), and the pure service time (send -> last
byte) is kept beside it. Responses are parsed (status line, ``Content-Length``) and their body length
checked. One connection suffices while responses take well under 1/rate; ``late`` counts requests that
left more than 1 ms behind schedule, the sign that the path (or the machine) could not keep up.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

REQUEST = b"GET / HTTP/1.1\r\nHost: backend\r\nUser-Agent: atoll-bench\r\n\r\n"
SPIN_NS = 200_000


@dataclass
class Samples:
    latency_us: list[float] = field(default_factory=list)  # scheduled -> response complete
    service_us: list[float] = field(default_factory=list)  # sent -> response complete
    errors: int = 0
    late: int = 0
    body_bytes: int = 0


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[int, int]:
    """Read one response; (status, body length). ``buf`` keeps bytes of the next one, if any."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    body = bytearray(rest)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-body")
        body += chunk
    buf[:] = body[length:]
    return status, length


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def fixed_rate(port: int, rate: float, seconds: float, expect_bytes: int | None = None) -> Samples:
    out = Samples()
    interval = int(1e9 / rate)
    count = int(rate * seconds)
    sock = _connect(port)
    buf = bytearray()
    start = time.perf_counter_ns() + 10_000_000
    try:
        for i in range(count):
            due = start + i * interval
            now = time.perf_counter_ns()
            if due - now > SPIN_NS:
                time.sleep((due - now - SPIN_NS) / 1e9)
            while time.perf_counter_ns() < due:
                pass
            sent = time.perf_counter_ns()
            if sent - due > 1_000_000:
                out.late += 1
            try:
                sock.sendall(REQUEST)
                status, length = _read_response(sock, buf)
            except OSError:
                out.errors += 1
                sock.close()
                sock, buf = _connect(port), bytearray()
                continue
            done = time.perf_counter_ns()
            if status != 200 or (expect_bytes is not None and length != expect_bytes):
                out.errors += 1
                continue
            out.body_bytes += length
            out.latency_us.append((done - due) / 1000)
            out.service_us.append((done - sent) / 1000)
    finally:
        sock.close()
    return out
