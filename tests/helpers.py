"""Test helpers shared by every suite: polling with a deadline, free ports, process handling.

Tests never sleep to wait for state: they poll a condition until a deadline (``wait_until`` /
``await_until``) and fail with the last observed value when it passes.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
ATOLL = [sys.executable, "-m", "atoll.cli.main"]

_port_lock = threading.Lock()
_next_port = 20000 + (os.getpid() % 200) * 40


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, below the ephemeral range (Envoy pitfall 8)."""
    global _next_port
    with _port_lock:
        for _ in range(4000):
            _next_port += 1
            if _next_port >= 32000:
                _next_port = 20000
            p = _next_port
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    continue
                return p
    raise RuntimeError("no free port")


def wait_until(cond: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> T:
    """Poll ``cond`` until it returns a truthy value; return it. Fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = cond()
        except Exception as e:  # the condition may raise while the system is starting
            last = e
        else:
            if last:
                return last  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or cond}: last={last!r}")
        time.sleep(interval)


async def await_until(
    cond: Callable[[], Awaitable[T] | T],
    timeout: float = 10.0,  # noqa: ASYNC109 - a polling deadline, not a cancel scope
    interval: float = 0.02,
    what: str = "",
) -> T:
    """Async ``wait_until``: call ``cond()`` (awaiting it if it returns an awaitable) until truthy."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = cond()
            if inspect.isawaitable(last):
                last = await last
        except Exception as e:
            last = e
        else:
            if last:
                return last  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or cond}: last={last!r}")
        await asyncio.sleep(interval)


def stop_process(p: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL the whole process group if it is still there."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)


class HttpBackend:
    """A real HTTP/1.1 backend on 127.0.0.1 answering ``backend=<label>``.

    ``stop()`` also closes connections kept alive by clients (a plain ``ThreadingHTTPServer`` keeps
    serving them from their handler threads after ``shutdown()``), so a stopped backend is really gone.
    Responses go out in one write with Nagle off (Envoy pitfall 11).
    """

    def __init__(self, label: str, port: int | None = None) -> None:
        import http.server

        self.label = label
        self.port = port or free_port()
        self.requests = 0
        body = f"backend={label}".encode()
        backend = self
        conns: set[socket.socket] = set()
        self._conns = conns
        self._lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            wbufsize = -1

            def setup(self) -> None:
                super().setup()
                with backend._lock:
                    conns.add(self.connection)

            def finish(self) -> None:
                with backend._lock:
                    conns.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:
                backend.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with self._lock:
            for c in list(self._conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(5)


def http_get(port: int, path: str = "/", timeout: float = 2.0, host: str = "127.0.0.1") -> tuple[int, str]:
    """One request on a fresh connection; (status, body)."""
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()
