"""Instances per zone, where they are counted and where they become weights (issue 14, item 14).

A zone CP publishes, per mesh and full tag set, how many ready local inbounds it has
(``available_services``); other zones weight that zone's ingress endpoint by that count
(``MeshIndex`` endpoints). Only the multi-zone e2e test caught a wrong count before.
"""

from __future__ import annotations

from typing import Any

from atoll.resources import Resource, decode
from atoll.topology import MeshView
from atoll.topology.ingress import available_services
from atoll.topology.view import endpoints_by_service

MESH = decode(
    {
        "type": "Mesh",
        "name": "default",
        "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]},
    }
)


def _dp(name: str, service: str, *, version: str = "v1", ready: bool = True, port: int = 8080) -> Resource[Any]:
    inbound: dict[str, Any] = {"port": port, "tags": {"kuma.io/service": service, "version": version}}
    if not ready:
        inbound["health"] = {"ready": False}
    return decode(
        {
            "type": "Dataplane",
            "mesh": "default",
            "name": name,
            "networking": {"address": "10.0.0.1", "inbound": [inbound]},
        }
    )


def _ingress(zone: str, services: list[tuple[str, int]]) -> Resource[Any]:
    return decode(
        {
            "type": "ZoneIngress",
            "name": f"ingress-{zone}",
            "zone": zone,
            "networking": {
                "address": "10.9.0.1",
                "port": 10001,
                "advertisedAddress": f"192.168.{len(zone)}.1",
                "advertisedPort": 10001,
            },
            "availableServices": [
                {"tags": {"kuma.io/service": s}, "instances": n, "mesh": "default"} for s, n in services
            ],
        }
    )


def test_available_services_counts_ready_local_instances_per_tag_set() -> None:
    dataplanes = (
        _dp("b1", "backend"),
        _dp("b2", "backend"),
        _dp("b3", "backend"),
        _dp("b4", "backend", version="v2"),
        _dp("b5", "backend", ready=False),  # not ready: not counted
        _dp("d1", "db", port=5432),
    )
    # another zone's ingress offering backend: its instances are that zone's, never offered again
    view = MeshView(MESH, dataplanes, "zone-1", zone_ingresses=(_ingress("zone-2", [("backend", 7)]),))
    counts = {(e["tags"]["kuma.io/service"], e["tags"]["version"]): e["instances"] for e in available_services([view])}
    assert counts == {("backend", "v1"): 3, ("backend", "v2"): 1, ("db", "v1"): 1}
    assert all(e["mesh"] == "default" for e in available_services([view]))


def test_a_remote_zones_endpoint_weighs_its_instance_count() -> None:
    ingresses = (
        _ingress("zone-2", [("backend", 3), ("db", 0)]),  # db: no instance left there, no endpoint
        _ingress("zone-30", [("backend", 5)]),
        _ingress("zone-1", [("backend", 11)]),  # this zone's own ingress: never an endpoint here
    )
    view = MeshView(MESH, (_dp("b1", "backend"), _dp("b2", "backend")), "zone-1", zone_ingresses=ingresses)
    eps = endpoints_by_service(view)
    weights = sorted((e.zone, e.weight, e.ingress) for e in eps["backend"])
    assert weights == [("zone-1", None, False), ("zone-1", None, False), ("zone-2", 3, True), ("zone-30", 5, True)]
    assert "db" not in eps or all(not e.ingress for e in eps["db"])
