"""Test doubles and process helpers for the data plane agent tests.

- ``HttpBackend``: the shared ``tests.helpers.HttpBackend`` (``/slow`` blocks until ``release_slow``
  is set; ``stop()``/``start()`` take it down and bring it back on the same port) with the signature
  these tests use: port first, not started until ``start()``.
- ``FakeCp``: stands in ONLY for the control plane's ``POST /bootstrap`` and ``POST /dp/health``
  endpoints, which the lead wires on the CP side later. It records every request and answers from a
  handler the test sets (by default: a static Envoy bootstrap built from the request's ``adminPort``).
- ``static_bootstrap``: an Envoy bootstrap with one HTTP listener routed to one static cluster.
- ``alive`` / ``children_of``: process checks through ``/proc`` (a zombie counts as gone).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests import helpers
from tests.helpers import await_until, static_cluster

Handler = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def static_bootstrap(*, admin_port: int, listener_port: int, backend_port: int) -> dict[str, Any]:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "node": {"id": "default.web-1", "cluster": "web"},
        "static_resources": {
            "listeners": [
                {
                    "name": "inbound",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listener_port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                        "http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": "inbound",
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {
                                                            "match": {"prefix": "/"},
                                                            "route": {"cluster": "backend", "timeout": "30s"},
                                                        }
                                                    ],
                                                }
                                            ]
                                        },
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {
                                                    "@type": "type.googleapis.com/"
                                                    "envoy.extensions.filters.http.router.v3.Router"
                                                },
                                            }
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [static_cluster("backend", backend_port)],
        },
    }


class HttpBackend(helpers.HttpBackend):
    """A real HTTP backend on 127.0.0.1:``port``; serves after ``start()``."""

    def __init__(self, port: int, label: str = "A") -> None:
        super().__init__(label, port, start=False)


class FakeCp:
    """Stands in only for the CP's not-yet-wired ``/bootstrap`` and ``/dp/health`` endpoints."""

    def __init__(self, port: int, *, listener_port: int = 0, backend_port: int = 0) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.listener_port = listener_port
        self.backend_port = backend_port
        self.lock = threading.Lock()
        self.bootstrap_requests: list[dict[str, Any]] = []
        self.health_reports: list[dict[str, Any]] = []
        self.bootstrap_handler: Handler = self.static_answer
        self.health_status = 200
        self._server: ThreadingHTTPServer | None = None

    def static_answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        boot = static_bootstrap(
            admin_port=int(body["adminPort"]), listener_port=self.listener_port, backend_port=self.backend_port
        )
        return 200, {"bootstrap": boot, "xds": {"host": "127.0.0.1", "port": 5678}}

    def start(self) -> None:
        cp = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/bootstrap":
                    with cp.lock:
                        cp.bootstrap_requests.append(body)
                    status, answer = cp.bootstrap_handler(body)
                elif self.path == "/dp/health":
                    with cp.lock:
                        status = cp.health_status
                        if status == 200:
                            cp.health_reports.append(body)
                    answer = {}
                else:
                    status, answer = 404, {"title": "not found"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def reports(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.health_reports)

    def latest_inbounds(self) -> dict[int, bool]:
        reports = self.reports()
        if not reports:
            return {}
        return {i["port"]: i["ready"] for i in reports[-1]["inbounds"]}


def alive(pid: int) -> bool:
    """True if ``pid`` runs (``os.kill(pid, 0)``) and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def children_of(pid: int) -> list[int]:
    """Pids of the live children of ``pid`` (scans ``/proc``)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def until(cond: Callable[[], object], what: str, within: float = 10.0) -> Any:
    """``await_until`` for a plain (non-async) condition."""

    async def check() -> object:
        return cond()

    return await await_until(check, timeout=within, what=what)
