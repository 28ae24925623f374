"""``GET /meshes/{mesh}/_vips``: answered from the CP's names where it serves proxies, a 404 saying
where to ask elsewhere (global), and the mesh must exist."""

from __future__ import annotations

from typing import Any

import httpx

from atoll.api.app import ApiInfo
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


async def test_global_says_vips_are_per_zone(make_client: ClientFactory) -> None:
    api = await make_client(info=ApiInfo(version="test", mode="global"))
    await _mesh(api)
    r = await api.get("/meshes/default/_vips")
    assert r.status_code == 404
    assert r.json()["details"] == "VIPs are allocated per zone: ask each zone's control plane (this one allocates none)"
