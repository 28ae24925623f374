"""mTLS and MeshTrafficPermission with real traffic: client Envoy -> server Envoy -> Python backend.

Both Envoys run static configs made from generated resources (``static_bootstrap``: EDS inlined,
SDS secrets turned into static secrets). The client is the sidecar of ``web-1`` (identity
``spiffe://default/web``); the server Envoy carries the inbound listeners of several Dataplanes,
one per service, each with its own MeshTrafficPermission (selected by ``targetRef`` Dataplane),
all in front of one HTTP backend. TCP services carry the same HTTP through tcp_proxy.

Direct Python TLS clients check what the client Envoy cannot show: plaintext against STRICT, a
certificate from another CA, and the caller's identity deciding the RBAC outcome.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atoll.resources import decode_all
from atoll.topology import Identity, MeshView, proxy_view
from atoll.xds.generate import sidecar_resources
from tests.generate.certs import Ca, issue, make_ca
from tests.generate.envoy_validate import static_bootstrap
from tests.generate.http_backend import serve_http
from tests.generate.sidecars import merged_bootstrap, mesh_view_of, running_envoy, stat
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.envoy

# service name -> (protocol, action of web towards it)
SERVICES = {
    "api": ("http", "Allow"),
    "api-denied": ("http", "Deny"),
    "api-shadow": ("http", "AllowWithShadowDeny"),
    "db": ("tcp", "Allow"),
    "db-denied": ("tcp", "Deny"),
}


HITS: collections.Counter[str] = collections.Counter()
"""Requests the backend received, by path (to count retries)."""


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    """An HTTP backend: ``/status/<code>`` answers ``code``, ``/slow`` answers after 2 s (or when
    the module is done), anything else 200 ``backend <path>``."""
    release = threading.Event()
    lock = threading.Lock()

    def answer(path: str) -> tuple[int, bytes]:
        with lock:
            HITS[path] += 1
        status = 200
        if path.startswith("/status/"):
            status = int(path.removeprefix("/status/"))
        elif path == "/slow":
            release.wait(2.0)  # a slow application, not a test waiting for state
        return status, f"backend {path}".encode()

    server = serve_http(answer)
    try:
        yield server.server_address[1]
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def ca() -> Ca:
    return make_ca("default")


def _mesh_yaml(mode: str, app: int, ports: dict[str, int]) -> str:
    out = (
        "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n"
        f"    - name: ca-1\n      type: builtin\n      mode: {mode}\n"
    )
    outbounds = "".join(f"    - port: {ports['out-' + s]}\n      tags: {{kuma.io/service: {s}}}\n" for s in SERVICES)
    out += (
        "---\ntype: Dataplane\nmesh: default\nname: web-1\nnetworking:\n  address: 127.0.0.1\n"
        f"  inbound:\n    - port: {ports['web']}\n      tags: {{kuma.io/service: web, kuma.io/zone: zone-1}}\n"
        f"  outbound:\n{outbounds}"
    )
    for s, (protocol, action) in SERVICES.items():
        out += (
            f"---\ntype: Dataplane\nmesh: default\nname: {s}-1\nnetworking:\n  address: 127.0.0.1\n"
            f"  inbound:\n    - port: {ports[s]}\n      servicePort: {app}\n"
            f"      tags: {{kuma.io/service: {s}, kuma.io/protocol: {protocol}}}\n"
            f"---\ntype: MeshTrafficPermission\nmesh: default\nname: {s}\nspec:\n"
            f"  targetRef: {{kind: Dataplane, name: {s}-1}}\n  from:\n"
            "    - targetRef: {kind: Mesh}\n      default: {action: Deny}\n"
            f"    - targetRef: {{kind: MeshService, name: web}}\n      default: {{action: {action}}}\n"
        )
    return out


def _mesh_view(mode: str, app: int, ports: dict[str, int], extra: str = "") -> MeshView:
    return mesh_view_of(_mesh_yaml(mode, app, ports) + extra)


@contextlib.contextmanager
def _mesh(mode: str, app: int, ca: Ca, tmp: Path, extra: str = "") -> Iterator[tuple[dict[str, int], dict[str, str]]]:
    names = ["web", "client-admin", "server-admin", "dead", *SERVICES, *(f"out-{s}" for s in SERVICES)]
    ports = {k: free_port() for k in names}
    mv = _mesh_view(mode, app, ports, extra.format(**ports))
    server_id = issue(ca, "default", list(SERVICES))  # one Envoy serves every service: one cert, all SANs
    client_id = issue(ca, "default", "web", {"kuma.io/zone": "zone-1"})
    server = merged_bootstrap(
        [static_bootstrap(sidecar_resources(proxy_view(mv, f"{s}-1"), server_id)) for s in SERVICES],
        ports["server-admin"],
    )
    client = merged_bootstrap(
        [static_bootstrap(sidecar_resources(proxy_view(mv, "web-1"), client_id))], ports["client-admin"]
    )
    with running_envoy(server, tmp, "server") as server_admin, running_envoy(client, tmp, "client") as client_admin:
        yield ports, {"server": server_admin, "client": client_admin}


def _get(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/hello", timeout=5)


def _tls_get(port: int, identity: Identity | None, tmp: Path) -> str:
    """GET / over TLS with ``identity`` as client certificate (no server verification); the raw
    response, or ``"error: ..."`` when the handshake or the read fails or the peer closes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if identity is not None:
        (tmp / "c.pem").write_text(identity.cert_pem)
        (tmp / "k.pem").write_text(identity.key_pem)
        ctx.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as s:
            s.sendall(b"GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except (OSError, ssl.SSLError) as e:
        return f"error: {e!r}"
    return data.decode(errors="replace") or "error: closed without a response"


def test_strict_mtls_and_permissions(backend: int, ca: Ca, tmp_path: Path) -> None:
    with _mesh("STRICT", backend, ca, tmp_path) as (ports, admin):
        # Allow: through client Envoy -> mTLS -> server Envoy -> backend
        r = wait_until(lambda: _get(ports["out-api"]), what="allowed HTTP through both Envoys")
        assert (r.status_code, r.text) == (200, "backend /hello")
        r = _get(ports["out-db"])
        assert (r.status_code, r.text) == (200, "backend /hello")
        assert stat(admin["server"], "http.inbound_api.rbac.allowed") >= 1
        assert stat(admin["server"], "inbound_db.rbac.allowed") >= 1

        # Deny: HTTP gets 403 from the server's RBAC; TCP gets its connection closed
        r = _get(ports["out-api-denied"])
        assert r.status_code == 403
        assert "RBAC: access denied" in r.text
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            _get(ports["out-db-denied"])
        assert stat(admin["server"], "inbound_db-denied.rbac.denied") >= 1

        # AllowWithShadowDeny: served, and the shadow decision (deny) is counted
        r = _get(ports["out-api-shadow"])
        assert (r.status_code, r.text) == (200, "backend /hello")
        assert stat(admin["server"], "http.inbound_api-shadow.rbac.shadow_denied") >= 1

        # Plaintext to a STRICT inbound is refused (no HTTP response at all)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{ports['api']}/plain", timeout=5)

        # A direct TLS client: the mesh identity of web is allowed / denied like the client Envoy ...
        web = issue(ca, "default", "web")
        assert _tls_get(ports["api"], web, tmp_path).startswith("HTTP/1.1 200")
        assert _tls_get(ports["api-denied"], web, tmp_path).startswith("HTTP/1.1 403")
        # ... another identity of the mesh is not web: the Mesh-wide Deny applies
        assert _tls_get(ports["api"], issue(ca, "default", "other"), tmp_path).startswith("HTTP/1.1 403")
        # ... a certificate of another CA, or none, is refused during the handshake
        assert _tls_get(ports["api"], issue(make_ca("evil"), "default", "web"), tmp_path).startswith("error")
        assert _tls_get(ports["api"], None, tmp_path).startswith("error")


def test_permissive_accepts_mtls_and_plaintext(backend: int, ca: Ca, tmp_path: Path) -> None:
    with _mesh("PERMISSIVE", backend, ca, tmp_path) as (ports, _admin):
        r = wait_until(lambda: _get(ports["out-api"]), what="allowed HTTP through both Envoys")
        assert (r.status_code, r.text) == (200, "backend /hello")
        # mTLS callers are still subject to permissions
        assert _get(ports["out-api-denied"]).status_code == 403
        # plaintext callers are let in (no identity, no RBAC): that is what PERMISSIVE is for
        r = httpx.get(f"http://127.0.0.1:{ports['api-denied']}/plain", timeout=5)
        assert (r.status_code, r.text) == (200, "backend /plain")
        r = httpx.get(f"http://127.0.0.1:{ports['db']}/plain-tcp", timeout=5)
        assert (r.status_code, r.text) == (200, "backend /plain-tcp")
        # a certificate of another CA is still refused on the TLS chain
        assert _tls_get(ports["api"], issue(make_ca("evil"), "default", "web"), tmp_path).startswith("error")


DEAD_ZONE_INGRESS = """---
type: ZoneIngress
name: ingress-zone-2
zone: zone-2
networking:
  address: 127.0.0.1
  advertisedAddress: 127.0.0.1
  advertisedPort: {dead}
availableServices:
  - tags: {{kuma.io/service: api, kuma.io/protocol: http}}
    instances: 3
    mesh: default
"""


def test_unreachable_zone_ingress_is_ejected(backend: int, ca: Ca, tmp_path: Path) -> None:
    """``api`` has a local instance and (weight 3) a zone-2 ingress nobody listens on: the default
    outlier detection of clusters with ingress endpoints ejects the ingress, then every request
    succeeds locally."""
    with _mesh("STRICT", backend, ca, tmp_path, extra=DEAD_ZONE_INGRESS) as (ports, admin):
        ok_in_a_row = 0

        def twenty_in_a_row() -> bool:
            nonlocal ok_in_a_row
            ok_in_a_row = ok_in_a_row + 1 if _get(ports["out-api"]).status_code == 200 else 0
            return ok_in_a_row >= 20

        wait_until(twenty_in_a_row, timeout=30, interval=0.01, what="the dead zone ingress ejected")
        assert stat(admin["client"], "cluster.api.outlier_detection.ejections_enforced_total") >= 1
        assert stat(admin["client"], "cluster.api.outlier_detection.ejections_active") == 1


TIMEOUT_AND_RETRY = """---
type: MeshTimeout
mesh: default
name: api-timeout
spec:
  targetRef: {{kind: Mesh}}
  to:
    - targetRef: {{kind: MeshService, name: api}}
      default: {{http: {{requestTimeout: 300ms}}}}
---
type: MeshRetry
mesh: default
name: api-retry
spec:
  targetRef: {{kind: Dataplane, name: web-1}}
  to:
    - targetRef: {{kind: MeshService, name: api}}
      default: {{http: {{numRetries: 2, retryOn: ["503"], backOff: {{baseInterval: 10ms, maxInterval: 20ms}}}}}}
"""


def test_timeout_and_retry_policies(backend: int, ca: Ca, tmp_path: Path) -> None:
    with _mesh("STRICT", backend, ca, tmp_path, extra=TIMEOUT_AND_RETRY) as (ports, _admin):
        r = wait_until(lambda: _get(ports["out-api"]), what="allowed HTTP through both Envoys")
        assert r.status_code == 200
        # MeshRetry: a 503 is tried 1 + 2 times, then returned; a 500 (not in retryOn) once
        before = HITS["/status/503"], HITS["/status/500"]
        assert httpx.get(f"http://127.0.0.1:{ports['out-api']}/status/503", timeout=5).status_code == 503
        assert httpx.get(f"http://127.0.0.1:{ports['out-api']}/status/500", timeout=5).status_code == 500
        assert (HITS["/status/503"] - before[0], HITS["/status/500"] - before[1]) == (3, 1)
        # MeshTimeout: the 300 ms request timeout answers 504 long before the application does
        r = httpx.get(f"http://127.0.0.1:{ports['out-api']}/slow", timeout=5)
        assert (r.status_code, r.text) == (504, "upstream request timeout")
        assert r.elapsed.total_seconds() < 1.5
        # the policies were for api only
        assert httpx.get(f"http://127.0.0.1:{ports['out-api-shadow']}/status/503", timeout=5).status_code == 503


def test_cross_zone_through_the_zone_ingress(backend: int, ca: Ca, tmp_path: Path) -> None:
    """zone-1's web reaches api in zone-2 only through zone-2's ingress: the client sidecar opens
    mTLS with SNI ``api{mesh=default}``, the ingress passes it through by SNI (it never
    terminates TLS), api's sidecar checks web's identity end to end: allowed 200, denied 403."""
    from atoll.topology.ingress import ingress_view
    from atoll.xds.generate.ingress import ingress_resources

    ports = {k: free_port() for k in ("api", "api-denied", "ingress", "out-api", "out-denied", "a1", "a2")}
    ingress_doc = (
        "---\ntype: ZoneIngress\nname: ingress-zone-2\nzone: zone-2\nnetworking:\n  address: 127.0.0.1\n"
        f"  port: {ports['ingress']}\n  advertisedAddress: 127.0.0.1\n  advertisedPort: {ports['ingress']}\n"
        "availableServices:\n"
        "  - {tags: {kuma.io/service: api, kuma.io/protocol: http}, instances: 1, mesh: default}\n"
        "  - {tags: {kuma.io/service: api-denied, kuma.io/protocol: http}, instances: 1, mesh: default}\n"
    )
    mesh = "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n    - {name: ca-1, type: builtin}\n"
    permissions = "".join(
        f"---\ntype: MeshTrafficPermission\nmesh: default\nname: {s}\nspec:\n"
        f"  targetRef: {{kind: MeshService, name: {s}}}\n"
        f"  from:\n    - targetRef: {{kind: MeshService, name: web}}\n      default: {{action: {a}}}\n"
        for s, a in (("api", "Allow"), ("api-denied", "Deny"))
    )
    zone2 = decode_all(
        mesh
        + permissions
        + "".join(
            f"---\ntype: Dataplane\nmesh: default\nname: {s}-1\nnetworking:\n  address: 127.0.0.1\n"
            f"  inbound:\n    - {{port: {ports[s]}, servicePort: {backend}, "
            f"tags: {{kuma.io/service: {s}, kuma.io/protocol: http}}}}\n"
            for s in ("api", "api-denied")
        )
        + ingress_doc
    )
    zone1 = decode_all(
        mesh + "---\ntype: Dataplane\nmesh: default\nname: web-1\nnetworking:\n  address: 127.0.0.1\n"
        f"  inbound:\n    - {{port: {free_port()}, tags: {{kuma.io/service: web}}}}\n"
        f"  outbound:\n    - {{port: {ports['out-api']}, tags: {{kuma.io/service: api}}}}\n"
        f"    - {{port: {ports['out-denied']}, tags: {{kuma.io/service: api-denied}}}}\n" + ingress_doc
    )

    def view(docs: list[Any], zone: str) -> MeshView:
        return MeshView(
            mesh=docs[0],
            dataplanes=tuple(d for d in docs if d.type == "Dataplane"),
            zone=zone,
            zone_ingresses=tuple(d for d in docs if d.type == "ZoneIngress"),
            policies=tuple(d for d in docs if d.type == "MeshTrafficPermission"),
        )

    mv1, mv2 = view(zone1, "zone-1"), view(zone2, "zone-2")
    (zi,) = [d for d in zone2 if d.type == "ZoneIngress"]
    client_res = sidecar_resources(proxy_view(mv1, "web-1"), issue(ca, "default", "web"))
    (cla,) = [c for c in client_res.cluster_load_assignments if c.cluster_name == "api"]
    assert [g.locality.zone for g in cla.endpoints] == ["zone-2"]  # only the remote ingress
    # One Envoy plays zone-2's ingress and both sidecars: one secret name per mesh, so one cert with both SANs.
    zone2_id = issue(ca, "default", ["api", "api-denied"])
    zone2_envoy = merged_bootstrap(
        [
            static_bootstrap(ingress_resources(ingress_view("ingress-zone-2", zi, [mv2]))),
            *(static_bootstrap(sidecar_resources(proxy_view(mv2, f"{s}-1"), zone2_id)) for s in ("api", "api-denied")),
        ],
        ports["a2"],
    )
    with (
        running_envoy(zone2_envoy, tmp_path, "zone-2") as admin2,
        running_envoy(merged_bootstrap([static_bootstrap(client_res)], ports["a1"]), tmp_path, "zone-1"),
    ):
        r = wait_until(lambda: _get(ports["out-api"]), what="cross-zone request")
        assert (r.status_code, r.text) == (200, "backend /hello")
        assert _get(ports["out-denied"]).status_code == 403
        assert stat(admin2, "tcp.ingress_default_api.downstream_cx_total") >= 1
        assert stat(admin2, "http.inbound_api.rbac.allowed") >= 1
