"""Kuma's REST paths on Atoll's API (issue 15): Kuma's plurals with Atoll's older ones as aliases,
the ``_overview`` and insight routes in Kuma's shapes, and what they answer for proxies nothing here
serves (no invented state). The real kumactl drives the same routes in ``tests/compat``."""

from __future__ import annotations

from typing import Any

import httpx

from atoll.api import paths
from atoll.resources.types import find_type

ES = {
    "type": "ExternalService",
    "mesh": "default",
    "name": "httpbin",
    "networking": {"address": "httpbin.org:443"},
    "tags": {"kuma.io/service": "httpbin"},
}


def dataplane(name: str, service: str, **networking: Any) -> dict[str, Any]:
    inbound = [{"port": 8080, "tags": {"kuma.io/service": service, "version": "v1"}}]
    return {
        "type": "Dataplane",
        "mesh": "default",
        "name": name,
        "networking": {"address": "10.0.0.1", "inbound": inbound, **networking},
    }


async def put(api: httpx.AsyncClient, path: str, doc: dict[str, Any]) -> None:
    r = await api.put(path, json=doc)
    assert r.status_code in (200, 201), r.text


async def mesh_with_services(api: httpx.AsyncClient) -> None:
    await put(api, "/meshes/default", {"type": "Mesh", "name": "default"})
    await put(api, "/meshes/default/dataplanes/web-1", dataplane("web-1", "web"))
    await put(api, "/meshes/default/dataplanes/web-2", dataplane("web-2", "web"))
    await put(api, "/meshes/default/external-services/httpbin", ES)


def test_kuma_plurals_are_the_registry_plurals_with_atolls_as_aliases() -> None:
    for kuma, atoll in (("external-services", "externalservices"), ("virtual-outbounds", "virtualoutbounds")):
        rt = find_type(kuma)
        assert rt is not None and rt.plural == kuma and find_type(atoll) is rt
        assert (paths.MESH + "/" + atoll, paths.collection_template(rt)) in paths.alias_templates(rt)


async def test_both_spellings_serve_the_same_resources(api: httpx.AsyncClient) -> None:
    await mesh_with_services(api)
    kuma = (await api.get("/meshes/default/external-services/httpbin")).json()
    atoll = (await api.get("/meshes/default/externalservices/httpbin")).json()
    assert kuma == atoll and kuma["networking"]["address"] == "httpbin.org:443"
    assert (await api.get("/externalservices")).json()["total"] == 1
    assert (await api.delete("/meshes/default/externalservices/httpbin")).status_code == 200
    assert (await api.get("/meshes/default/external-services/httpbin")).status_code == 404
    types = {t["name"]: t for t in (await api.get("/_resources")).json()["resources"]}
    assert types["ExternalService"]["plural"] == "external-services"
    assert types["ExternalService"]["pluralAliases"] == ["externalservices"]


async def test_dataplanes_overview_with_filters_and_no_invented_state(api: httpx.AsyncClient) -> None:
    await mesh_with_services(api)
    gw = {"gateway": {"tags": {"kuma.io/service": "edge"}}}
    await put(
        api,
        "/meshes/default/dataplanes/edge",
        {**dataplane("edge", "edge"), "networking": {"address": "10.0.0.2", **gw}},
    )
    page = (await api.get("/meshes/default/dataplanes/_overview")).json()
    assert [i["name"] for i in page["items"]] == ["edge", "web-1", "web-2"]
    web = page["items"][1]
    assert web["type"] == "DataplaneOverview" and web["mesh"] == "default"
    assert web["dataplane"]["networking"]["inbound"][0]["port"] == 8080
    assert web["dataplaneInsight"] == {"subscriptions": []}  # no proxy connected: offline, nothing made up

    async def names(query: str) -> list[str]:
        r = await api.get("/meshes/default/dataplanes/_overview?" + query)
        assert r.status_code == 200, r.text
        return [i["name"] for i in r.json()["items"]]

    assert await names("tag=kuma.io/service:web&tag=version:v1") == ["web-1", "web-2"]
    assert await names("gateway=true") == ["edge"]
    assert await names("gateway=false&size=1&offset=1") == ["web-2"]
    assert await names("ingress=true") == []
    bad = await api.get("/meshes/default/dataplanes/_overview?tag=nocolon&gateway=maybe")
    assert bad.status_code == 400
    assert {p["field"] for p in bad.json()["invalid_parameters"]} == {"tag", "gateway"}
    one = (await api.get("/meshes/default/dataplanes/web-1/_overview")).json()
    assert one["name"] == "web-1" and one["type"] == "DataplaneOverview"
    insight = (await api.get("/meshes/default/dataplane-insights/web-1")).json()
    assert insight == {"type": "DataplaneInsight", "mesh": "default", "name": "web-1", "subscriptions": []}


async def test_mesh_and_service_insights(api: httpx.AsyncClient) -> None:
    await mesh_with_services(api)
    mesh = (await api.get("/mesh-insights/default")).json()
    assert mesh["type"] == "MeshInsight" and mesh["name"] == "default"
    assert mesh["dataplanes"] == {"total": 2, "offline": 2}
    assert mesh["services"] == {"total": 2, "internal": 1, "external": 1}
    assert mesh["resources"]["Dataplane"] == {"total": 2} and mesh["resources"]["ExternalService"] == {"total": 1}
    assert all(find_type(t) is not None and find_type(t).policy for t in mesh["policies"])  # type: ignore[union-attr]
    assert (await api.get("/mesh-insights")).json()["total"] == 1
    services = (await api.get("/meshes/default/service-insights")).json()["items"]
    assert [(s["name"], s["status"], s["dataplanes"]) for s in services] == [
        ("httpbin", "not_available", {}),
        ("web", "offline", {"total": 2, "offline": 2}),
    ]
    assert services[0]["addressPort"] == "httpbin.org:443" and services[0]["serviceType"] == "external"
    missing = await api.get("/meshes/default/service-insights/nope")
    assert missing.status_code == 404 and "kuma.io/service=nope" in missing.json()["details"]
    assert (await api.get("/meshes/nope/service-insights")).status_code == 404


async def test_zone_overviews(api: httpx.AsyncClient) -> None:
    await put(api, "/zones/east", {"type": "Zone", "name": "east"})
    ingress = {"type": "ZoneIngress", "name": "in-1", "networking": {"address": "10.0.0.5", "port": 10001}}
    await put(api, "/zoneingresses/in-1", ingress)
    await put(
        api,
        "/zoneegresses/eg-1",
        {"type": "ZoneEgress", "name": "eg-1", "networking": {"address": "10.0.0.6", "port": 10002}},
    )
    zones = (await api.get("/zones/_overview")).json()["items"]
    assert zones == [
        {
            **zones[0],
            "type": "ZoneOverview",
            "name": "east",
            "zone": {"enabled": True},
            "zoneInsight": {"subscriptions": []},
        }
    ]
    i = (await api.get("/zoneingresses/in-1/_overview")).json()
    assert i["type"] == "ZoneIngressOverview" and i["zoneIngress"]["networking"]["port"] == 10001
    assert i["zoneIngressInsight"] == {"subscriptions": []}
    e = (await api.get("/zoneegresses/_overview")).json()["items"][0]
    assert e["type"] == "ZoneEgressOverview" and e["zoneEgressInsight"] == {"subscriptions": []}
    assert (await api.get("/zones/nope/_overview")).status_code == 404


async def test_server_managed_fields_are_ignored_on_write(api: httpx.AsyncClient) -> None:
    doc = {
        "type": "Mesh",
        "name": "m",
        "kri": "kri_m____m_",
        "creationTime": "0001-01-01T00:00:00Z",
        "modificationTime": "0001-01-01T00:00:00Z",
    }
    r = await api.put("/meshes/m", json=doc)
    assert r.status_code == 201, r.text
    assert "kri" not in r.json() and not r.json()["creationTime"].startswith("0001")
    bad = await api.put("/meshes/m", json={**doc, "kri": ["x"], "colour": "blue"})
    assert {p["field"] for p in bad.json()["invalid_parameters"]} == {"kri", "colour"}
