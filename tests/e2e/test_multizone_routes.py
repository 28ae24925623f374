"""MeshHTTPRoute and MeshTCPRoute across zones, as real processes on loopback.

A global CP and two zones with an ingress each; mTLS mesh. ``backend`` runs as version v1 in zone-1
and as version v2 only in zone-2; ``db`` runs in zone-1 and ``db-replica`` only in zone-2;
``frontend`` (zone-1) reaches backend and db. Routes written at global reach zone-1's sidecars (and
zone-2's ingress, which then offers the ``version: v2`` subset): a MeshHTTPRoute sends ``/v2`` to
``backend{version=v2}``, which exists only behind zone-2's ingress; a 50/50 split by version sends
half of ``/split`` there; a MeshTCPRoute moves db's traffic to db-replica in zone-2.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from tests.e2e.multizone import MultiZone, allow_all, mtls_mesh
from tests.helpers import free_port, http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]

OUT_BACKEND = free_port()
OUT_DB = free_port()


def _get(port: int, path: str = "/") -> str:
    try:
        status, body = http_get(port, path, timeout=3)
    except OSError as e:
        return f"error:{type(e).__name__}"
    return body if status == 200 else f"status:{status}"


def _version(version: str) -> dict[str, object]:
    return {"kind": "MeshServiceSubset", "name": "backend", "tags": {"version": version}}


HTTP_ROUTE = {
    "type": "MeshHTTPRoute",
    "mesh": "default",
    "name": "versions",
    "spec": {
        "targetRef": {"kind": "Mesh"},
        "to": [
            {
                "targetRef": {"kind": "MeshService", "name": "backend"},
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                        "default": {"backendRefs": [_version("v2")]},
                    },
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/split"}}],
                        "default": {
                            "backendRefs": [
                                {
                                    "kind": "MeshServiceSubset",
                                    "name": "backend",
                                    "tags": {"version": "v1"},
                                    "weight": 50,
                                },
                                {
                                    "kind": "MeshServiceSubset",
                                    "name": "backend",
                                    "tags": {"version": "v2"},
                                    "weight": 50,
                                },
                            ]
                        },
                    },
                ],
            }
        ],
    },
}

TCP_ROUTE = {
    "type": "MeshTCPRoute",
    "mesh": "default",
    "name": "db-to-replica",
    "spec": {
        "targetRef": {"kind": "Mesh"},
        "to": [
            {
                "targetRef": {"kind": "MeshService", "name": "db"},
                "rules": [{"default": {"backendRefs": [{"kind": "MeshService", "name": "db-replica"}]}}],
            }
        ],
    },
}


@pytest.fixture(scope="module")
def mz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiZone]:
    m = MultiZone(tmp_path_factory.mktemp("multizone-routes"))
    try:
        m.start_global()
        m.glob.put(mtls_mesh())
        m.glob.put(allow_all())
        m.add_zone("zone-1")
        m.add_zone("zone-2")
        m.ingress("zone-1")
        m.ingress("zone-2")
        m.service("zone-1", "backend-v1", "backend", tags={"version": "v1"})
        m.service("zone-2", "backend-v2", "backend", tags={"version": "v2"})
        m.service("zone-1", "db-1", "db", protocol="tcp")
        m.service("zone-2", "db-replica-2", "db-replica", protocol="tcp")
        m.service("zone-1", "frontend", "frontend", outbound={"backend": OUT_BACKEND, "db": OUT_DB})
        wait_until(
            lambda: {_get(OUT_BACKEND) for _ in range(20)} == {"backend=backend-v1", "backend=backend-v2"},
            timeout=60,
            what="frontend reaches backend in both zones",
        )
        yield m
    except BaseException:
        print(m.dump_logs())
        raise
    finally:
        m.stop()


def test_http_route_reaches_a_version_that_runs_only_in_the_other_zone(mz: MultiZone) -> None:
    assert _get(OUT_BACKEND, "/v2/x") in ("backend=backend-v1", "backend=backend-v2")  # no route yet
    mz.glob.put(HTTP_ROUTE)
    wait_until(
        lambda: all(_get(OUT_BACKEND, "/v2/x") == "backend=backend-v2" for _ in range(10)),
        timeout=30,
        what="/v2 goes to backend v2 in zone-2 through its ingress",
    )
    answers = Counter(_get(OUT_BACKEND, "/v2/x") for _ in range(60))
    assert answers == Counter({"backend=backend-v2": 60}), answers
    # A 50/50 split between the local v1 and the remote-only v2.
    split = Counter(_get(OUT_BACKEND, "/split") for _ in range(300))
    assert set(split) == {"backend=backend-v1", "backend=backend-v2"}, split
    assert 0.4 <= split["backend=backend-v2"] / 300 <= 0.6, split
    # Outside the rules, the catch-all still balances over every instance.
    assert {_get(OUT_BACKEND, "/other") for _ in range(40)} == {"backend=backend-v1", "backend=backend-v2"}


def test_tcp_route_moves_a_tcp_service_to_the_other_zone(mz: MultiZone) -> None:
    assert {_get(OUT_DB) for _ in range(10)} == {"backend=db-1"}
    mz.glob.put(TCP_ROUTE)
    wait_until(
        lambda: all(_get(OUT_DB) == "backend=db-replica-2" for _ in range(10)),
        timeout=30,
        what="db traffic moved to db-replica in zone-2",
    )
