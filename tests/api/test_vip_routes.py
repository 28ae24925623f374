"""``GET /meshes/{mesh}/_vips``: answered from the CP's names where it serves proxies, from the zones'
synced allocations at global, a 404 saying where to ask elsewhere, and the mesh must exist."""

from __future__ import annotations

from typing import Any

import httpx

from atoll.api.app import ApiInfo
from atoll.resources import decode
from atoll.store import Store
from tests.api.conftest import ClientFactory

ANSWER = {"mesh": "default", "zone": "zone-1", "cidr": "240.0.0.0/4", "items": [], "retired": []}


async def _mesh(api: httpx.AsyncClient) -> None:
    r = await api.put("/meshes/default", json={"type": "Mesh", "name": "default"})
    assert r.status_code == 201, r.text


async def test_a_zone_answers_from_its_names(make_client: ClientFactory) -> None:
    asked: list[str] = []

    def vips(mesh: str) -> dict[str, Any]:
        asked.append(mesh)
        return ANSWER

    api = await make_client(vips=vips, info=ApiInfo(version="test", mode="zone", zone="zone-1"))
    await _mesh(api)
    r = await api.get("/meshes/default/_vips")
    assert (r.status_code, r.json(), asked) == (200, ANSWER, ["default"])
    r = await api.get("/meshes/default/_vips", headers={"accept": "application/yaml"})
    assert r.headers["content-type"].startswith("application/yaml") and "cidr: 240.0.0.0/4" in r.text
    r = await api.get("/meshes/nope/_vips")
    assert r.status_code == 404
    assert r.json()["invalid_parameters"] == [{"field": "mesh", "reason": 'mesh "nope" does not exist'}]


async def test_global_answers_with_the_allocations_zones_synced(make_client: ClientFactory, store: Store) -> None:
    api = await make_client(info=ApiInfo(version="test", mode="global"))
    await _mesh(api)
    r = await api.get("/meshes/default/_vips")
    assert (r.status_code, r.json()) == (200, {"mesh": "default", "zones": []})
    synced = decode(
        {
            "type": "VipAllocation",
            "mesh": "default",
            "name": "vips-5f3a",
            "labels": {"kuma.io/origin": "zone", "kuma.io/zone": "zone-2"},
            "cidr": "240.0.0.0/4",
            "entries": [{"hostname": "backend.mesh", "vip": "240.0.0.1"}],
        }
    )
    await store.create(synced)
    r = await api.get("/meshes/default/_vips")
    assert r.json() == {
        "mesh": "default",
        "zones": [
            {"zone": "zone-2", "cidr": "240.0.0.0/4", "items": [{"hostname": "backend.mesh", "vip": "240.0.0.1"}]}
        ],
    }


async def test_a_cp_without_proxies_says_where_vips_are(make_client: ClientFactory) -> None:
    api = await make_client()
    await _mesh(api)
    r = await api.get("/meshes/default/_vips")
    assert r.status_code == 404
    assert r.json()["details"] == "VIPs are allocated per zone: ask a control plane that serves proxies"
