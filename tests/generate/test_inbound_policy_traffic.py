"""MeshFaultInjection and MeshRateLimit with real traffic: client Envoy -> server Envoy -> backend.

Both Envoys run static configs made from generated resources (``static_bootstrap``). The client is
the sidecar of ``web-1``; the server Envoy carries the inbound listeners of one Dataplane per
service below, all in front of one Python backend that always answers 200. Every 503, 418, 429,
delay or refused connection seen by the client therefore comes from the server sidecar's policies.
The mesh has no mTLS, so a test can also call a server inbound directly, as a caller without tags.

Counts are taken over hundreds of requests with tolerances several standard deviations wide, rate
limits use a one-minute interval (no refill during a test), and delays are 500 ms: robust on a
loaded machine.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator

import httpx
import pytest

from atoll.topology import MeshView, proxy_view
from atoll.xds.generate import sidecar_resources
from tests.generate.envoy_validate import static_bootstrap
from tests.generate.http_backend import serve_http
from tests.generate.sidecars import merged_bootstrap, mesh_view_of, running_envoy
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.envoy

# service -> protocol
SERVICES = {"plain": "http", "faulty": "http", "slow": "http", "picky": "http", "limited": "http", "db": "tcp"}

POLICIES = """---
type: MeshFaultInjection
mesh: default
name: faulty
spec:
  targetRef: {kind: MeshService, name: faulty}
  from:
    - targetRef: {kind: Mesh}
      default:
        http:
          - abort: {httpStatus: 503, percentage: 50}
---
type: MeshFaultInjection
mesh: default
name: slow
spec:
  targetRef: {kind: MeshService, name: slow}
  from:
    - targetRef: {kind: Mesh}
      default:
        http:
          - delay: {value: 500ms, percentage: 100}
---
type: MeshFaultInjection
mesh: default
name: picky
spec:
  targetRef: {kind: MeshService, name: picky}
  from:
    - targetRef: {kind: Mesh}
      default:
        http: []
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
  from:
    - targetRef: {kind: Mesh}
      default:
        local:
          http:
            requestRate: {num: 5, interval: 1m}
            onRateLimit:
              status: 429
              headers:
                add: [{name: x-limited, value: "yes"}]
---
type: MeshRateLimit
mesh: default
name: db
spec:
  targetRef: {kind: MeshService, name: db}
  from:
    - targetRef: {kind: Mesh}
      default:
        local:
          tcp:
            connectionRate: {num: 3, interval: 1m}
"""


def _mesh_view(app: int, ports: dict[str, int]) -> MeshView:
    outbounds = "".join(f"    - port: {ports['out-' + s]}\n      tags: {{kuma.io/service: {s}}}\n" for s in SERVICES)
    text = (
        "type: Mesh\nname: default\n"
        "---\ntype: Dataplane\nmesh: default\nname: web-1\nnetworking:\n  address: 127.0.0.1\n"
        f"  inbound:\n    - port: {ports['web']}\n      tags: {{kuma.io/service: web, kuma.io/protocol: http}}\n"
        f"  outbound:\n{outbounds}"
    )
    for s, protocol in SERVICES.items():
        text += (
            f"---\ntype: Dataplane\nmesh: default\nname: {s}-1\nnetworking:\n  address: 127.0.0.1\n"
            f"  inbound:\n    - port: {ports[s]}\n      servicePort: {app}\n"
            f"      tags: {{kuma.io/service: {s}, kuma.io/protocol: {protocol}}}\n"
        )
    return mesh_view_of(text + POLICIES)


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """The two Envoys running; the ports of web's outbounds (``out-<service>``) and of the inbounds."""
    app = serve_http(lambda path: (200, f"backend {path}".encode()))
    tmp = tmp_path_factory.mktemp("envoys")
    names = ["web", "client-admin", "server-admin", *SERVICES, *(f"out-{s}" for s in SERVICES)]
    found = {k: free_port() for k in names}
    mv = _mesh_view(app.server_address[1], found)
    server = merged_bootstrap(
        [static_bootstrap(sidecar_resources(proxy_view(mv, f"{s}-1"))) for s in SERVICES], found["server-admin"]
    )
    client = merged_bootstrap([static_bootstrap(sidecar_resources(proxy_view(mv, "web-1")))], found["client-admin"])
    try:
        with running_envoy(server, tmp, "server"), running_envoy(client, tmp, "client"):
            wait_until(lambda: _get(found["out-plain"]).status_code == 200, what="traffic through both Envoys")
            yield found
    finally:
        app.shutdown()
        app.server_close()


def _get(port: int, client: httpx.Client | None = None) -> httpx.Response:
    url = f"http://127.0.0.1:{port}/hello"
    return client.get(url, timeout=10) if client is not None else httpx.get(url, timeout=10)


def test_abort_at_half_answers_about_half_with_its_status(ports: dict[str, int]) -> None:
    """300 requests, abort 503 at 50 %: 40..60 % of 503s (about ±3.5 standard deviations), the rest 200."""
    with httpx.Client() as client:
        codes = [_get(ports["out-faulty"], client).status_code for _ in range(300)]
    assert set(codes) <= {200, 503}
    assert 120 <= codes.count(503) <= 180, codes.count(503)


def _median_seconds(port: int, n: int = 15) -> float:
    with httpx.Client() as client:
        times = []
        for _ in range(n):
            r = _get(port, client)
            assert r.status_code == 200
            times.append(r.elapsed.total_seconds())
    return statistics.median(times)


def test_delay_adds_its_value_to_the_median(ports: dict[str, int]) -> None:
    added = _median_seconds(ports["out-slow"]) - _median_seconds(ports["out-plain"])
    assert 0.45 <= added <= 0.9, added


def test_faults_for_one_source_reach_that_source_only(ports: dict[str, int]) -> None:
    """web's sidecar sends its tags: web gets the 418 of its own ``from[]`` item; a caller without
    tags (straight to the inbound) gets the Mesh item's empty list of faults."""
    assert _get(ports["out-picky"]).status_code == 418
    direct = _get(ports["picky"])
    assert (direct.status_code, direct.text) == (200, "backend /hello")


def test_http_rate_limit_admits_n_then_answers_its_status_and_headers(ports: dict[str, int]) -> None:
    with httpx.Client() as client:
        answers = [_get(ports["out-limited"], client) for _ in range(12)]
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 7
    assert all(r.headers.get("x-limited") == "yes" for r in answers[5:])
    assert all("x-limited" not in r.headers for r in answers[:5])


def test_tcp_connection_rate_limit_refuses_connections_past_it(ports: dict[str, int]) -> None:
    """Each request opens a new connection through web's tcp_proxy: 3 are served, later ones closed."""
    served = [_get(ports["out-db"]).text for _ in range(3)]
    assert served == ["backend /hello"] * 3
    for _ in range(3):
        with pytest.raises(httpx.TransportError):
            _get(ports["out-db"])
    # other services are not limited
    assert _get(ports["out-plain"]).status_code == 200
