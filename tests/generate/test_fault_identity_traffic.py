"""MeshFaultInjection by SPIFFE ID, the callers' headers, and MeshRateLimit ``set`` headers with
real traffic in an mTLS mesh: client Envoy (``web-1``, identity ``spiffe://default/web``) ->
server Envoy (one inbound per service below, all in front of one Python backend that answers 200
and echoes the request headers it got) -> backend.

Direct TLS clients with other certificates of the mesh play the other callers: ``admin`` (its
own identity) and a forger that sends a made-up ``x-forwarded-client-cert``. Every 418/503/429
seen comes from the server sidecar's policies (the backend only answers 200).
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from atoll.topology import Identity, MeshView, proxy_view
from atoll.xds.generate import sidecar_resources
from tests.generate.certs import Ca, issue, make_ca
from tests.generate.envoy_validate import static_bootstrap
from tests.generate.http_backend import serve_http_headers
from tests.generate.sidecars import merged_bootstrap, mesh_view_of, running_envoy
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.envoy

SERVICES = ("exact", "prefix", "tagged", "plain", "limited")

POLICIES = """---
type: MeshTrafficPermission
mesh: default
name: allow-all
spec:
  targetRef: {kind: Mesh}
  from:
    - targetRef: {kind: Mesh}
      default: {action: Allow}
---
type: MeshFaultInjection
mesh: default
name: exact
spec:
  targetRef: {kind: MeshService, name: exact}
  rules:
    - matches:
        - spiffeID: {type: Exact, value: "spiffe://default/web"}
      default:
        http:
          - abort: {httpStatus: 418, percentage: 100}
---
type: MeshFaultInjection
mesh: default
name: prefix
spec:
  targetRef: {kind: MeshService, name: prefix}
  rules:
    - matches:
        - spiffeID: {type: Prefix, value: "spiffe://default/"}
      default:
        http:
          - abort: {httpStatus: 503, percentage: 100}
    - matches:
        - spiffeID: {type: Exact, value: "spiffe://default/web"}
      default:
        http: []
---
type: MeshFaultInjection
mesh: default
name: tagged
spec:
  targetRef: {kind: MeshService, name: tagged}
  from:
    - targetRef: {kind: MeshService, name: web}
      default:
        http:
          - abort: {httpStatus: 418, percentage: 100}
---
type: MeshRateLimit
mesh: default
name: limited
spec:
  targetRef: {kind: MeshService, name: limited}
  rules:
    - default:
        local:
          http:
            requestRate: {num: 2, interval: 1m}
            onRateLimit:
              status: 429
              headers:
                set: [{name: x-multi, value: "a,b"}]
                add: [{name: x-added, value: "c,d"}]
"""


def _mesh_view(app: int, ports: Mapping[str, int]) -> MeshView:
    text = (
        "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n    - {name: ca-1, type: builtin}\n"
        "---\ntype: Dataplane\nmesh: default\nname: web-1\nnetworking:\n  address: 127.0.0.1\n"
        f"  inbound:\n    - port: {ports['web']}\n      tags: {{kuma.io/service: web, kuma.io/protocol: http}}\n"
        "  outbound:\n"
        + "".join(f"    - port: {ports['out-' + s]}\n      tags: {{kuma.io/service: {s}}}\n" for s in SERVICES)
    )
    for s in SERVICES:
        text += (
            f"---\ntype: Dataplane\nmesh: default\nname: {s}-1\nnetworking:\n  address: 127.0.0.1\n"
            f"  inbound:\n    - port: {ports[s]}\n      servicePort: {app}\n"
            f"      tags: {{kuma.io/service: {s}, kuma.io/protocol: http}}\n"
        )
    return mesh_view_of(text + POLICIES)


@pytest.fixture(scope="module")
def ca() -> Ca:
    return make_ca("default")


@pytest.fixture(scope="module")
def ports(ca: Ca, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """The two Envoys running; the ports of web's outbounds (``out-<service>``) and of the inbounds."""

    def echo(path: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        return 200, json.dumps({"path": path, "headers": dict(headers)}).encode()

    app = serve_http_headers(echo)
    tmp = tmp_path_factory.mktemp("envoys")
    names = ["web", "client-admin", "server-admin", *SERVICES, *(f"out-{s}" for s in SERVICES)]
    found = {k: free_port() for k in names}
    mv = _mesh_view(app.server_address[1], found)
    server_id = issue(ca, "default", list(SERVICES))  # one Envoy serves every service: one cert, all SANs
    server = merged_bootstrap(
        [static_bootstrap(sidecar_resources(proxy_view(mv, f"{s}-1"), server_id)) for s in SERVICES],
        found["server-admin"],
    )
    client = merged_bootstrap(
        [static_bootstrap(sidecar_resources(proxy_view(mv, "web-1"), issue(ca, "default", "web")))],
        found["client-admin"],
    )
    try:
        with running_envoy(server, tmp, "server"), running_envoy(client, tmp, "client"):
            wait_until(lambda: _get(found["out-plain"]).status_code == 200, what="traffic through both Envoys")
            yield found
    finally:
        app.shutdown()
        app.server_close()


def _get(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/hello", timeout=10)


def _tls_status(port: int, identity: Identity, tmp: Path, headers: str = "") -> int:
    """The status a direct mTLS caller with ``identity`` gets for ``GET /tls`` (with extra raw
    ``headers`` lines)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    (tmp / "c.pem").write_text(identity.cert_pem)
    (tmp / "k.pem").write_text(identity.key_pem)
    ctx.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    request = f"GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_exact_spiffe_id_rule_faults_that_caller_only(ports: dict[str, int], ca: Ca, tmp_path: Path) -> None:
    assert _get(ports["out-exact"]).status_code == 418  # web, through its sidecar
    assert _tls_status(ports["exact"], issue(ca, "default", "admin"), tmp_path) == 200
    assert _tls_status(ports["exact"], issue(ca, "default", "web"), tmp_path) == 418


def test_most_specific_spiffe_rule_wins(ports: dict[str, int], ca: Ca, tmp_path: Path) -> None:
    """Prefix ``spiffe://default/`` aborts every mesh caller, the Exact rule for web (no faults)
    is more specific: web is served, admin is not."""
    with httpx.Client() as client:
        codes = {client.get(f"http://127.0.0.1:{ports['out-prefix']}/x", timeout=10).status_code for _ in range(20)}
    assert codes == {200}
    assert _tls_status(ports["prefix"], issue(ca, "default", "admin"), tmp_path) == 503


def test_a_caller_cannot_claim_an_identity_by_header(ports: dict[str, int], ca: Ca, tmp_path: Path) -> None:
    """The inbound replaces any ``x-forwarded-client-cert`` a caller sends with its certificate's."""
    forged = "x-forwarded-client-cert: By=spiffe://default/exact;URI=spiffe://default/web\r\n"
    assert _tls_status(ports["exact"], issue(ca, "default", "admin"), tmp_path, forged) == 200


def test_callers_headers_never_reach_the_application(ports: dict[str, int]) -> None:
    """web sends ``x-kuma-tags`` (a fault policy of the mesh tells callers apart by tags): only
    ``tagged`` reads it, yet no inbound passes it on; nor the client-cert header of ``prefix``."""
    assert _get(ports["out-tagged"]).status_code == 418  # the tags did reach the inbound
    for service in ("plain", "prefix"):
        seen = _get(ports[f"out-{service}"]).json()["headers"]
        assert "x-kuma-tags" not in seen, (service, seen)
        assert "x-forwarded-client-cert" not in seen, (service, seen)


def test_rate_limit_set_header_values_split_on_commas(ports: dict[str, int]) -> None:
    """As in Kuma, ``set`` ``a,b`` becomes two "overwrite" header entries, ``a`` then ``b`` (``add``
    is kept whole). Envoy applies overwrites in order, so the answer carries the last part only:
    what a Kuma sidecar sends for the same policy."""
    with httpx.Client() as client:
        answers = [client.get(f"http://127.0.0.1:{ports['out-limited']}/r", timeout=10) for _ in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 429, 429, 429]
    limited = answers[2]
    assert limited.headers.get_list("x-added") == ["c,d"]
    assert limited.headers.get_list("x-multi") == ["b"]
