"""The demo's applications and load: a ``backend`` that says who it is, a ``frontend`` that calls
``backend`` through its sidecar, and a load loop that calls the frontend and tallies who answered."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class App:
    """A small HTTP server on 127.0.0.1:port; ``respond(path)`` returns (status, body)."""

    def __init__(self, port: int, respond: Callable[[str], tuple[int, bytes]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            wbufsize = -1  # one write per response: no Nagle/delayed-ACK stall behind Envoy

            def do_GET(self) -> None:
                status, body = respond(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.port = port
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def backend(port: int, name: str) -> App:
    return App(port, lambda path: (200, name.encode()))


def frontend(port: int, upstream_port: int, external_port: int | None = None) -> App:
    """Answers with the body of ``backend`` reached through the sidecar's outbound on ``upstream_port``
    (``/external``: of the external service, through the outbound on ``external_port``)."""

    def respond(path: str) -> tuple[int, bytes]:
        target = external_port if path == "/external" and external_port is not None else upstream_port
        try:
            status, body = get(target, timeout=2.0)
        except OSError as e:
            return 502, f"backend unreachable: {e}".encode()
        return status, body.encode()

    return App(port, respond)


def get(port: int, timeout: float = 2.0, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


class Load:
    """Calls the frontend ``rate`` times a second on a thread, cycling through ``paths``; ``take()``
    returns and resets the tally (answers by body, errors by kind and path)."""

    def __init__(self, port: int, rate: float = 20.0, paths: tuple[str, ...] = ("/",)) -> None:
        self.port = port
        self.paths = paths
        self.interval = 1.0 / rate
        self._lock = threading.Lock()
        self._answers: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_at = time.monotonic()
        i = 0
        while not self._stop.is_set():
            path = self.paths[i % len(self.paths)]
            i += 1
            where = "" if path == "/" else f" {path}"
            try:
                status, body = get(self.port, path=path)
                with self._lock:
                    if status == 200:
                        self._answers[body] += 1
                    else:
                        self._errors[f"HTTP {status}{where}"] += 1
            except OSError as e:
                with self._lock:
                    self._errors[f"{type(e).__name__}{where}"] += 1
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def take(self) -> tuple[Counter[str], Counter[str]]:
        with self._lock:
            answers, errors = self._answers, self._errors
            self._answers, self._errors = Counter(), Counter()
        return answers, errors

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
