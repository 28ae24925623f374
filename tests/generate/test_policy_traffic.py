"""Outbound policies change what real Envoys do: MeshRetry, MeshCircuitBreaker (connection limits
and outlier detection), MeshHealthCheck and MeshLoadBalancingStrategy, each through two sidecars.

The client Envoy is the sidecar of ``web-1`` (an outbound to ``api``); the server Envoy plays the
sidecars of ``api-1`` and ``api-2`` (one inbound listener each, in front of an application each).
Both run static configs made from generated resources (``static_bootstrap``), so what is observed
is what the generators produced, nothing else. Each test writes its policy, checks the behaviour
at the applications (which instance answered, how many attempts arrived) and in Envoy's stats.
(MeshTimeout and MeshTrafficPermission are checked the same way in ``test_mtls_traffic``.)
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from atoll.topology import proxy_view
from atoll.xds.generate import sidecar_resources
from tests.generate.envoy_validate import static_bootstrap
from tests.generate.http_backend import serve_http
from tests.generate.sidecars import merged_bootstrap, mesh_view_of, running_envoy, stat
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.envoy

INSTANCES = ("api-1", "api-2")


class Apps:
    """The applications of ``api-1`` and ``api-2``. Each answers 200 with its name, except:

    - ``/health``: 200, or 503 while its name is in ``failing_health``;
    - any other path: 503 while its name is in ``broken`` (except what follows);
    - ``/slow``: once ``release`` is set (a slow application; set at teardown at the latest);
    - ``/flaky/<n>/<key>``: 503 to the first ``n`` requests for that path, counted over both
      instances (a retry may go to either), 200 after.

    ``hits[(name, path)]`` counts every request each instance received.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: Counter[tuple[str, str]] = Counter()
        self.failing_health: set[str] = set()
        self.broken: set[str] = set()
        self.release = threading.Event()
        self.servers: dict[str, ThreadingHTTPServer] = {n: serve_http(self._answer_as(n)) for n in INSTANCES}

    def _answer_as(self, name: str) -> Callable[[str], tuple[int, bytes]]:
        def answer(path: str) -> tuple[int, bytes]:
            with self.lock:
                self.hits[(name, path)] += 1
                seen = self.path_hits(path)
                unhealthy = name in self.failing_health
                broken = name in self.broken
            if path == "/health":
                return (503 if unhealthy else 200), name.encode()
            if broken:
                return 503, f"{name} broken".encode()
            if path == "/slow":
                self.release.wait(30)  # a slow application, not a test waiting for state
            if path.startswith("/flaky/") and seen <= int(path.split("/")[2]):
                return 503, f"{name} failing".encode()
            return 200, name.encode()

        return answer

    def path_hits(self, path: str) -> int:
        return sum(n for (_, p), n in self.hits.items() if p == path)

    def port(self, name: str) -> int:
        return int(self.servers[name].server_address[1])

    def close(self) -> None:
        self.release.set()
        for s in self.servers.values():
            s.shutdown()
            s.server_close()


@pytest.fixture
def apps() -> Iterator[Apps]:
    a = Apps()
    try:
        yield a
    finally:
        a.close()


def _mesh_yaml(apps: Apps, ports: dict[str, int], policy: str) -> str:
    out = (
        "type: Mesh\nname: default\n"
        "---\ntype: Dataplane\nmesh: default\nname: web-1\nnetworking:\n  address: 127.0.0.1\n"
        f"  inbound:\n    - {{port: {ports['web']}, tags: {{kuma.io/service: web}}}}\n"
        f"  outbound:\n    - {{port: {ports['out-api']}, tags: {{kuma.io/service: api}}}}\n"
    )
    for name in INSTANCES:
        out += (
            f"---\ntype: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: 127.0.0.1\n"
            f"  inbound:\n    - port: {ports[name]}\n      servicePort: {apps.port(name)}\n"
            "      tags: {kuma.io/service: api, kuma.io/protocol: http}\n"
        )
    return out + policy


class Sidecars:
    """The running pair: ``url(path)`` through web-1's outbound to api; the two admin URLs."""

    def __init__(self, out_port: int, client: str, server: str) -> None:
        self.out_port = out_port
        self.client = client
        self.server = server

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.out_port}{path}"

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(self.url(path), headers=headers, timeout=30)


@contextlib.contextmanager
def _sidecars(apps: Apps, tmp: Path, policy: str) -> Iterator[Sidecars]:
    ports = {k: free_port() for k in ("web", "out-api", *INSTANCES, "client-admin", "server-admin")}
    mv = mesh_view_of(_mesh_yaml(apps, ports, policy))
    server = merged_bootstrap(
        [static_bootstrap(sidecar_resources(proxy_view(mv, n))) for n in INSTANCES], ports["server-admin"]
    )
    client = merged_bootstrap([static_bootstrap(sidecar_resources(proxy_view(mv, "web-1")))], ports["client-admin"])
    with running_envoy(server, tmp, "server") as server_admin, running_envoy(client, tmp, "client") as client_admin:
        pair = Sidecars(ports["out-api"], client_admin, server_admin)
        wait_until(lambda: pair.get("/ready").status_code == 200, timeout=30, what="api through both sidecars")
        yield pair


def _policy(kind: str, default: str) -> str:
    return (
        f"---\ntype: {kind}\nmesh: default\nname: api-policy\nspec:\n  targetRef: {{kind: Mesh}}\n"
        f"  to:\n    - targetRef: {{kind: MeshService, name: api}}\n      default: {default}\n"
    )


def _answered_by(pair: Sidecars, n: int) -> Counter[str]:
    out: Counter[str] = Counter()
    for _ in range(n):
        r = pair.get("/hello")
        out[r.text if r.status_code == 200 else f"status {r.status_code}"] += 1
    return out


# --- MeshRetry --------------------------------------------------------------------------------------

RETRY = _policy(
    "MeshRetry", "{http: {numRetries: 2, retryOn: ['5xx'], backOff: {baseInterval: 10ms, maxInterval: 20ms}}}"
)


def test_retry_turns_failures_into_success_within_its_budget(apps: Apps, tmp_path: Path) -> None:
    """An upstream that fails the first 2 requests of each key answers 200 after exactly 3 attempts
    (numRetries 2); one that fails 3 times exhausts the budget: 503 after 3 attempts, no more."""
    with _sidecars(apps, tmp_path, RETRY) as pair:
        answers = Counter(pair.get(f"/flaky/2/key-{i}").status_code for i in range(30))
        attempts = Counter(apps.path_hits(f"/flaky/2/key-{i}") for i in range(30))
        assert (answers, attempts) == (Counter({200: 30}), Counter({3: 30}))

        r = pair.get("/flaky/3/beyond")
        assert (r.status_code, apps.path_hits("/flaky/3/beyond")) == (503, 3)
        assert stat(pair.client, "cluster.api.upstream_rq_retry") >= 2 * 30 + 2


# --- MeshCircuitBreaker -----------------------------------------------------------------------------

CIRCUIT_BREAKER = _policy(
    "MeshCircuitBreaker", "{connectionLimits: {maxConnections: 1, maxPendingRequests: 1, maxRequests: 1}}"
)
CONCURRENT = 8


def test_circuit_breaker_sheds_load_past_its_limits(apps: Apps, tmp_path: Path) -> None:
    """8 concurrent slow requests against limits of 1 connection, 1 pending and 1 request: at most
    2 are admitted (1 in flight, 1 waiting), Envoy answers every other one 503 at once with
    ``x-envoy-overloaded`` and counts it as an overflow (``upstream_rq_pending_overflow`` past the
    pending limit, ``upstream_rq_active_overflow`` past the request limit); the breakers read open."""
    with _sidecars(apps, tmp_path, CIRCUIT_BREAKER) as pair, ThreadPoolExecutor(CONCURRENT) as pool:
        futures = [pool.submit(pair.get, "/slow") for _ in range(CONCURRENT)]

        def every_request_placed() -> dict[str, int] | None:
            placed = {s: stat(pair.client, f"cluster.api.upstream_rq_{s}") for s in STATES}
            return placed if sum(placed.values()) == CONCURRENT else None

        seen = wait_until(
            every_request_placed,
            timeout=30,
            what="every request shed, in flight or waiting at the client sidecar",
        )
        breakers = {b: stat(pair.client, f"cluster.api.circuit_breakers.default.{b}") for b in BREAKERS}
        apps.release.set()
        answers = [f.result() for f in futures]

    shed = [r for r in answers if r.status_code == 503]
    assert all(r.headers.get("x-envoy-overloaded") == "true" for r in shed), [r.headers for r in shed]
    assert Counter(r.status_code for r in answers) == Counter({200: CONCURRENT - len(shed), 503: len(shed)})
    assert len(shed) == seen["pending_overflow"] + seen["active_overflow"] >= CONCURRENT - 2, seen
    assert seen["active"] <= 1 and seen["pending_active"] <= 1, seen
    assert breakers == dict.fromkeys(BREAKERS, 1), breakers


STATES = ("pending_overflow", "active_overflow", "active", "pending_active")
"""Where a request can be at the client sidecar: shed (two ways), in flight, waiting."""
BREAKERS = ("cx_open", "rq_pending_open", "rq_open")


OUTLIER_DETECTION = _policy(
    "MeshCircuitBreaker",
    "{outlierDetection: {interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100, "
    "detectors: {totalFailures: {consecutive: 3}}}}",
)


def test_outlier_detection_ejects_an_instance_that_keeps_failing(apps: Apps, tmp_path: Path) -> None:
    """api-2 answers 503 to everything: after 3 in a row the client sidecar ejects it (for 60 s),
    and every request after that is answered by api-1."""
    with _sidecars(apps, tmp_path, OUTLIER_DETECTION) as pair:
        wait_until(lambda: set(_answered_by(pair, 10)) == set(INSTANCES), timeout=30, what="both answer")
        with apps.lock:
            apps.broken.add("api-2")
        ejected = "cluster.api.outlier_detection.ejections_active"
        wait_until(
            lambda: _answered_by(pair, 5) and stat(pair.client, ejected) == 1,
            timeout=30,
            what="api-2 ejected after consecutive 503s",
        )
        before = apps.hits[("api-2", "/hello")]
        assert _answered_by(pair, 200) == Counter({"api-1": 200})
        assert apps.hits[("api-2", "/hello")] == before
        assert stat(pair.client, "cluster.api.outlier_detection.ejections_enforced_consecutive_5xx") >= 1


# --- MeshHealthCheck --------------------------------------------------------------------------------

HEALTH_CHECK = _policy(
    "MeshHealthCheck",
    "{interval: 200ms, noTrafficInterval: 200ms, timeout: 2s, unhealthyThreshold: 2, healthyThreshold: 1, "
    "http: {path: /health, expectedStatuses: [200]}}",
)
"""Checks every 200 ms, with traffic or without (Envoy's ``no_traffic_interval`` is 60 s otherwise)."""


def test_health_check_ejects_an_unhealthy_endpoint_and_brings_it_back(apps: Apps, tmp_path: Path) -> None:
    """api-2 starts failing its health path (its application still answers everything else):
    the client sidecar's active check marks it unhealthy and all traffic goes to api-1; when it
    passes again it gets traffic again."""
    with _sidecars(apps, tmp_path, HEALTH_CHECK) as pair:
        healthy = "cluster.api.membership_healthy"
        wait_until(lambda: stat(pair.client, healthy) == 2, timeout=30, what="both endpoints healthy")
        wait_until(lambda: set(_answered_by(pair, 10)) == set(INSTANCES), timeout=30, what="both answer")
        assert apps.hits[("api-2", "/health")] >= 1

        with apps.lock:
            apps.failing_health.add("api-2")
        wait_until(lambda: stat(pair.client, healthy) == 1, timeout=30, what="api-2 ejected by the health check")
        before = apps.hits[("api-2", "/hello")]
        assert _answered_by(pair, 200) == Counter({"api-1": 200})
        assert apps.hits[("api-2", "/hello")] == before
        assert stat(pair.client, "cluster.api.health_check.failure") >= 2

        with apps.lock:
            apps.failing_health.clear()
        wait_until(lambda: stat(pair.client, healthy) == 2, timeout=30, what="api-2 healthy again")
        wait_until(lambda: set(_answered_by(pair, 10)) == set(INSTANCES), timeout=30, what="both answer again")


# --- MeshLoadBalancingStrategy ----------------------------------------------------------------------

RING_HASH = _policy(
    "MeshLoadBalancingStrategy",
    "{loadBalancer: {type: RingHash, ringHash: {hashPolicies: [{type: Header, header: {name: x-user}}]}}}",
)


def test_ring_hash_sends_a_header_value_to_one_instance(apps: Apps, tmp_path: Path) -> None:
    """RingHash on header ``x-user``: 41 users x 6 requests each, in a new order each round (so no
    round-robin pattern can pass for hashing); every user always lands on the same instance, and
    the users are spread over both."""
    users = [f"user-{u}" for u in range(41)]
    order = random.Random(13)
    with _sidecars(apps, tmp_path, RING_HASH) as pair:
        seen: dict[str, Counter[str]] = {u: Counter() for u in users}
        for round_ in range(6):
            order.shuffle(users)
            for user in users:
                r = pair.get("/hello", headers={"x-user": user})
                assert r.status_code == 200, (round_, r.status_code, r.text)
                seen[user][r.text] += 1
        split = {u: dict(c) for u, c in seen.items() if len(c) > 1}
        assert not split, f"users answered by both instances: {split}"
        owners = Counter(next(iter(c)) for c in seen.values())
        assert set(owners) == set(INSTANCES), owners
