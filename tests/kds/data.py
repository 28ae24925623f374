"""Resources the KDS tests sync: real Meshes, policies, Dataplanes, ZoneIngresses."""

from __future__ import annotations

from typing import Any

from atoll.resources import Resource, decode


def mesh(name: str, **labels: str) -> Resource[Any]:
    return decode({"type": "Mesh", "name": name, "labels": labels})


def mtp(name: str, mesh: str = "default", action: str = "Allow") -> Resource[Any]:
    return decode(
        {
            "type": "MeshTrafficPermission",
            "name": name,
            "mesh": mesh,
            "spec": {
                "targetRef": {"kind": "Mesh"},
                "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": action}}],
            },
        }
    )


def dataplane(name: str, mesh: str = "default", port: int = 8080, service: str = "web", **labels: str) -> Resource[Any]:
    return decode(
        {
            "type": "Dataplane",
            "name": name,
            "mesh": mesh,
            "labels": labels,
            "networking": {
                "address": "10.0.0.1",
                "inbound": [{"port": port, "tags": {"kuma.io/service": service, "kuma.io/protocol": "http"}}],
            },
        }
    )


def zone_ingress(name: str, zone: str, port: int = 10001) -> Resource[Any]:
    return decode(
        {
            "type": "ZoneIngress",
            "name": name,
            "zone": zone,
            "networking": {
                "address": "127.0.0.1",
                "port": port,
                "advertisedAddress": "127.0.0.1",
                "advertisedPort": port,
            },
        }
    )
