"""Test helpers shared by every suite: polling with a deadline, free ports, process handling,
a real HTTP backend (``HttpBackend``, ``http_get``), Envoy static clusters (``static_cluster``) and
control-plane processes (``CpProcesses``, ``wait_cp_ready``).

Tests never sleep to wait for state: they poll a condition until a deadline (``wait_until`` /
``await_until``) and fail with the last observed value when it passes, chained to the last error the
condition raised (its traceback shows). A condition may raise (``assert``) while the system is not
there yet; when waiting longer cannot help (a process it waits for exited) it raises ``GiveUp``,
which fails the wait at once instead of as a timeout.
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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

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


class GiveUp(AssertionError):
    """Raised by a polled condition when waiting longer cannot help: ``wait_until`` re-raises it at once."""


def _timed_out(timeout: float, what: str, last: object) -> AssertionError:
    return AssertionError(f"timed out after {timeout}s waiting for {what}: last={last!r}")


def wait_until(cond: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> T:
    """Poll ``cond`` until it returns a truthy value; return it. Fail after ``timeout`` seconds (chained
    to the last error ``cond`` raised), or at once when ``cond`` raises ``GiveUp``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = cond()
        except GiveUp:
            raise
        except Exception as e:  # the condition may raise while the system is starting
            last = e
        else:
            if last:
                return last  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what or str(cond), last) from (last if isinstance(last, Exception) else None)
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
        except GiveUp:
            raise
        except Exception as e:
            last = e
        else:
            if last:
                return last  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what or str(cond), last) from (last if isinstance(last, Exception) else None)
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

    ``/slow`` blocks until ``release_slow`` is set (30 s at most); ``slow_started`` is set when such a
    request got there. Started on construction unless ``start=False``; ``stop()``/``start()`` take it
    down and bring it back on the same port. ``stop()`` also closes connections kept alive by clients
    (a plain ``ThreadingHTTPServer`` keeps serving them from their handler threads after
    ``shutdown()``), so a stopped backend is really gone. Responses go out in one write with Nagle off
    (Envoy pitfall 11).
    """

    def __init__(self, label: str, port: int | None = None, *, start: bool = True) -> None:
        self.label = label
        self.port = port or free_port()
        self.requests = 0
        self.release_slow = threading.Event()
        self.slow_started = threading.Event()
        self.server: Any = None  # the running ``http.server.ThreadingHTTPServer``
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    def start(self) -> None:
        import http.server

        backend = self
        body = f"backend={self.label}".encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            wbufsize = -1

            def setup(self) -> None:
                super().setup()
                with backend._lock:
                    backend._conns.add(self.connection)

            def finish(self) -> None:
                with backend._lock:
                    backend._conns.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:
                backend.requests += 1
                if self.path == "/slow":
                    backend.slow_started.set()
                    backend.release_slow.wait(30)
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
        """Stop serving and drop open connections; a no-op when stopped."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self._lock:
            for c in list(self._conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


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


def static_cluster(name: str, port: int, *, connect_timeout: str = "1s") -> dict[str, Any]:
    """An Envoy STATIC cluster (bootstrap JSON) with one endpoint, 127.0.0.1:``port``."""
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
                    ]
                }
            ],
        },
    }


@dataclass
class CpProcess:
    """A control plane started by ``CpProcesses``; suites subclass it to add their own accessors."""

    proc: subprocess.Popen[bytes]
    api: str
    """``http://127.0.0.1:<api port>``"""
    diag: str
    """``http://127.0.0.1:<diagnostics port>``"""
    log: Path
    """its stdout and stderr"""


class CpProcesses:
    """Starts real control planes (``python -m atoll.cp``) and stops them all in ``close()``.

    Each runs in its own session on free loopback ports (API, diagnostics, xDS) with the SQLite
    store in ``data_dir``, stdout and stderr going to ``log``; ``env`` adds or overrides ``ATOLL_*``.
    """

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self._files: list[IO[bytes]] = []

    def start(
        self, data_dir: Path, log: Path, env: Mapping[str, str] | None = None, *, api_port: int | None = None
    ) -> CpProcess:
        api_port = api_port or free_port()
        diag_port = free_port()
        full = {
            **os.environ,
            "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "ATOLL_API_PORT": str(api_port),
            "ATOLL_DIAGNOSTICS_PORT": str(diag_port),
            "ATOLL_XDS_PORT": str(free_port()),
            "ATOLL_DATA_DIR": str(data_dir),
            "ATOLL_STORE": "sqlite",
            **(env or {}),
        }
        out = log.open("wb")
        self._files.append(out)
        proc = subprocess.Popen(
            [sys.executable, "-m", "atoll.cp"], env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return CpProcess(proc, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{diag_port}", log)

    def close(self) -> None:
        for p in self.procs:
            stop_process(p)
        for f in self._files:
            f.close()


def wait_cp_ready(proc: subprocess.Popen[bytes], diag: str, log: Path, timeout: float) -> None:
    """Poll the control plane's ``/ready`` until 200; on timeout after the process exited, the
    failure shows its exit code and log."""
    import httpx

    def ready() -> bool:
        if proc.poll() is not None:
            raise GiveUp(f"control plane exited {proc.returncode}: {log.read_text()}")
        return httpx.get(diag + "/ready", timeout=2).status_code == 200

    wait_until(ready, timeout=timeout, what="control plane /ready")
