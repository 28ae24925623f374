"""REST resource CRUD through the real app (in process): every route shape, paging, filters, bodies."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import yaml

from atoll.api.app import ApiDependencies, ApiInfo, create_app
from atoll.resources import Resource, all_types, decode
from atoll.resources.defaults import initial_policies
from atoll.store import ListFilter, MemoryStore, Store
from tests.api.conftest import DATAPLANE_YAML, MESH_YAML, YAML, ClientFactory, dataplane, put_mesh


async def test_index_reports_product_version_mode_and_zone(make_client: ClientFactory) -> None:
    api = await make_client(info=ApiInfo(version="1.2.3", mode="zone", zone="east"))
    r = await api.get("/")
    assert r.status_code == 200
    body = r.json()
    assert body["product"] == "Atoll"
    assert (body["version"], body["mode"], body["zone"]) == ("1.2.3", "zone", "east")


async def test_resource_types_lists_every_registered_type(api: httpx.AsyncClient) -> None:
    r = await api.get("/_resources")
    assert r.status_code == 200
    listed = {t["name"]: t for t in r.json()["resources"]}
    assert set(listed) == {rt.name for rt in all_types()}
    assert listed["Dataplane"] == {
        "name": "Dataplane",
        "plural": "dataplanes",
        "scope": "mesh",
        "policy": False,
        "path": "/meshes/{mesh}/dataplanes",
    }
    assert listed["MeshTrafficPermission"]["policy"] is True
    assert listed["Zone"]["scope"] == "global" and listed["Zone"]["path"] == "/zones"


async def test_openapi_documents_every_resource_path(api: httpx.AsyncClient) -> None:
    r = await api.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    for rt in all_types():
        if rt.mesh_scoped:
            assert f"/meshes/{{mesh}}/{rt.plural}/{{name}}" in doc["paths"], rt.name
        else:
            assert f"/{rt.plural}/{{name}}" in doc["paths"], rt.name
    put = doc["paths"]["/meshes/{name}"]["put"]
    assert set(put["requestBody"]["content"]) == {"application/json", "application/yaml"}
    put_dp = doc["paths"]["/meshes/{mesh}/dataplanes/{name}"]["put"]
    assert [(p["name"], p["in"]) for p in put_dp["parameters"]] == [
        ("mesh", "path"),
        ("name", "path"),
        ("If-Match", "header"),
    ]
    listing = doc["paths"]["/meshes/{mesh}/dataplanes"]["get"]
    assert [p["name"] for p in listing["parameters"]] == ["mesh", "size", "offset", "name"]
    assert "/dataplanes" in doc["paths"] and "/meshes/{mesh}/{plural}" not in doc["paths"]


async def test_mesh_create_get_update_delete(api: httpx.AsyncClient, store: Store) -> None:
    r = await api.put("/meshes/demo", content=MESH_YAML.format(name="demo"), headers=YAML)
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == '"1"'
    assert r.json()["name"] == "demo"

    r = await api.get("/meshes/demo")
    assert r.status_code == 200
    assert r.json()["type"] == "Mesh" and "creationTime" in r.json()
    assert r.headers["etag"] == '"1"'

    body = {"type": "Mesh", "name": "demo", "routing": {"localityAwareLoadBalancing": True}}
    r = await api.put("/meshes/demo", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"2"'
    stored = await store.get("Mesh", "demo")
    assert stored.meta.version == 2
    assert stored.spec.routing.locality_aware_load_balancing is True

    r = await api.delete("/meshes/demo")
    assert r.status_code == 200
    assert (await api.get("/meshes/demo")).status_code == 404
    # Deleting a mesh takes its resources with it (the default policies here).
    for rt in all_types():
        if rt.mesh_scoped:
            assert (await store.list(ListFilter(type=rt.name, mesh="demo"))).total == 0


async def test_creating_a_mesh_creates_its_initial_policies(api: httpx.AsyncClient, store: Store) -> None:
    await put_mesh(api, "payments")
    expected = initial_policies(decode(yaml.safe_load(MESH_YAML.format(name="payments"))))
    assert expected, "initial_policies returns the default policies"
    for policy in expected:
        plural = next(rt.plural for rt in all_types() if rt.name == policy.type)
        r = await api.get(f"/meshes/payments/{plural}/{policy.name}")
        assert r.status_code == 200, (policy.type, policy.name, r.text)
        stored = await store.get(policy.type, policy.name, "payments")
        assert stored.spec == policy.spec
    # Updating the mesh does not create them again (still version 1).
    r = await api.put("/meshes/payments", content=MESH_YAML.format(name="payments"), headers=YAML)
    assert r.status_code == 200
    for policy in expected:
        assert (await store.get(policy.type, policy.name, "payments")).meta.version == 1


async def test_mesh_that_skips_initial_policies_gets_none(api: httpx.AsyncClient, store: Store) -> None:
    r = await api.put("/meshes/bare", json={"type": "Mesh", "name": "bare", "skipCreatingInitialPolicies": ["*"]})
    assert r.status_code == 201, r.text
    for rt in all_types():
        if rt.policy:
            assert (await store.list(ListFilter(type=rt.name, mesh="bare"))).total == 0, rt.name


async def test_dataplane_yaml_and_json_bodies(api: httpx.AsyncClient, store: Store) -> None:
    await put_mesh(api)
    r = await api.put(
        "/meshes/default/dataplanes/web-1", content=DATAPLANE_YAML.format(mesh="default", name="web-1"), headers=YAML
    )
    assert r.status_code == 201, r.text
    r = await api.put("/meshes/default/dataplanes/web-2", json=dataplane("web-2"))
    assert r.status_code == 201, r.text
    for ct in ("application/x-yaml", "text/yaml", "application/json; charset=utf-8"):
        body = json.dumps(dataplane("web-3", address="10.0.0.3"))  # JSON is YAML too
        r = await api.put("/meshes/default/dataplanes/web-3", content=body, headers={"content-type": ct})
        assert r.status_code in (200, 201), (ct, r.text)
    assert (await store.get("Dataplane", "web-1", "default")).spec.networking.address == "192.168.0.1"
    assert (await store.get("Dataplane", "web-3", "default")).meta.version == 3

    r = await api.get("/meshes/default/dataplanes/web-1")
    assert r.status_code == 200
    assert r.json()["networking"]["inbound"][0]["tags"]["kuma.io/service"] == "web"
    r = await api.get("/meshes/default/dataplanes/web-1", headers={"accept": "application/yaml"})
    assert r.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(r.text)["name"] == "web-1"


async def test_envelope_fields_missing_from_the_body_come_from_the_path(api: httpx.AsyncClient, store: Store) -> None:
    await put_mesh(api)
    body = dataplane("x")
    for key in ("type", "name", "mesh"):
        del body[key]
    r = await api.put("/meshes/default/dataplanes/implied", json=body)
    assert r.status_code == 201, r.text
    assert (await store.get("Dataplane", "implied", "default")).mesh == "default"


async def test_policy_with_labels_round_trips(api: httpx.AsyncClient) -> None:
    await put_mesh(api)
    doc = {
        "type": "MeshTrafficPermission",
        "name": "allow-all",
        "mesh": "default",
        "labels": {"team": "core"},
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}],
        },
    }
    r = await api.put("/meshes/default/meshtrafficpermissions/allow-all", json=doc)
    assert r.status_code == 201, r.text
    got = (await api.get("/meshes/default/meshtrafficpermissions/allow-all")).json()
    assert got["labels"] == {"team": "core"}
    assert got["spec"]["from"][0]["default"]["action"] == "Allow"


async def test_global_scoped_types_live_at_the_root(api: httpx.AsyncClient, store: Store) -> None:
    r = await api.put("/zones/east", json={"type": "Zone", "name": "east", "enabled": True})
    assert r.status_code == 201, r.text
    r = await api.put(
        "/zoneingresses/east-ingress",
        content="type: ZoneIngress\nname: east-ingress\nzone: east\nnetworking:\n  address: 10.0.0.1\n  port: 10001\n",
        headers=YAML,
    )
    assert r.status_code == 201, r.text
    r = await api.put(
        "/zoneegresses/east-egress",
        json={"type": "ZoneEgress", "name": "east-egress", "networking": {"address": "10.0.0.2", "port": 10002}},
    )
    assert r.status_code == 201, r.text
    for path, name in (("/zones", "east"), ("/zoneingresses", "east-ingress"), ("/zoneegresses", "east-egress")):
        listing = (await api.get(path)).json()
        assert [i["name"] for i in listing["items"]] == [name]
        assert (await api.get(f"{path}/{name}")).status_code == 200
        assert (await api.delete(f"{path}/{name}")).status_code == 200
        assert (await api.get(f"{path}/{name}")).status_code == 404


async def test_list_pages_with_size_offset_and_next(api: httpx.AsyncClient) -> None:
    await put_mesh(api)
    for i in range(7):
        r = await api.put(f"/meshes/default/dataplanes/dp-{i}", json=dataplane(f"dp-{i}", address=f"10.0.0.{i}"))
        assert r.status_code == 201
    seen: list[str] = []
    url: str | None = "/meshes/default/dataplanes?size=3"
    pages = 0
    while url is not None:
        r = await api.get(url)
        assert r.status_code == 200
        body = r.json()
        assert body["total"] == 7
        seen.extend(i["name"] for i in body["items"])
        url = body["next"]
        pages += 1
        if url is not None:
            assert url.startswith("http://atoll.test/meshes/default/dataplanes?")
            assert "size=3" in url
    assert pages == 3
    assert seen == [f"dp-{i}" for i in range(7)]

    body = (await api.get("/meshes/default/dataplanes", params={"offset": 5})).json()
    assert [i["name"] for i in body["items"]] == ["dp-5", "dp-6"] and body["next"] is None
    body = (await api.get("/meshes/default/dataplanes", params={"offset": 50})).json()
    assert body == {"total": 7, "items": [], "next": None}


async def test_list_filters_by_name_prefix(api: httpx.AsyncClient) -> None:
    await put_mesh(api)
    for name in ("web-1", "web-2", "backend-1"):
        assert (await api.put(f"/meshes/default/dataplanes/{name}", json=dataplane(name))).status_code == 201
    body = (await api.get("/meshes/default/dataplanes", params={"name": "web-"})).json()
    assert body["total"] == 2
    assert [i["name"] for i in body["items"]] == ["web-1", "web-2"]
    body = (await api.get("/meshes/default/dataplanes", params={"name": "web-", "size": 1})).json()
    assert body["total"] == 2 and len(body["items"]) == 1
    assert "name=web-" in body["next"]


async def test_list_of_a_mesh_scoped_type_across_meshes(api: httpx.AsyncClient) -> None:
    await put_mesh(api, "a")
    await put_mesh(api, "b")
    assert (await api.put("/meshes/a/dataplanes/one", json=dataplane("one", mesh="a"))).status_code == 201
    assert (await api.put("/meshes/b/dataplanes/two", json=dataplane("two", mesh="b"))).status_code == 201
    body = (await api.get("/dataplanes")).json()
    assert [(i["mesh"], i["name"]) for i in body["items"]] == [("a", "one"), ("b", "two")]
    assert [i["name"] for i in (await api.get("/meshes/b/dataplanes")).json()["items"]] == ["two"]


async def test_if_match_makes_an_update_conditional(api: httpx.AsyncClient, store: Store) -> None:
    await put_mesh(api)
    assert (await api.put("/meshes/default/dataplanes/dp", json=dataplane("dp"))).status_code == 201
    r = await api.put(
        "/meshes/default/dataplanes/dp", json=dataplane("dp", address="10.1.1.1"), headers={"If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"2"'
    r = await api.put(
        "/meshes/default/dataplanes/dp", json=dataplane("dp", address="10.2.2.2"), headers={"If-Match": "2"}
    )
    assert r.status_code == 200, r.text
    assert (await store.get("Dataplane", "dp", "default")).spec.networking.address == "10.2.2.2"


async def test_delete_with_if_match(api: httpx.AsyncClient, store: Store) -> None:
    await put_mesh(api)
    assert (await api.put("/meshes/default/dataplanes/dp", json=dataplane("dp"))).status_code == 201
    r = await api.delete("/meshes/default/dataplanes/dp", headers={"If-Match": "7"})
    assert r.status_code == 409
    assert "stale" in r.json()["details"]
    assert (await store.get("Dataplane", "dp", "default")).meta.version == 1
    assert (await api.delete("/meshes/default/dataplanes/dp", headers={"If-Match": "1"})).status_code == 200


@pytest.mark.parametrize("plural", ["dataplanes", "meshtimeouts", "externalservices", "secrets"])
async def test_get_and_delete_of_a_missing_resource_is_404(api: httpx.AsyncClient, plural: str) -> None:
    await put_mesh(api)
    for method in ("GET", "DELETE"):
        r = await api.request(method, f"/meshes/default/{plural}/nope")
        assert r.status_code == 404, (method, r.text)
        assert r.json()["title"] == "not found"
        assert "nope" in r.json()["details"]


async def test_secrets_are_served_to_admin_clients_only(make_client: ClientFactory, store: Store) -> None:
    admin = await make_client()
    other = await make_client(client_addr="10.1.2.3")
    await put_mesh(admin)
    secret = {"type": "Secret", "name": "token", "mesh": "default", "data": "c2VjcmV0"}
    assert (await admin.put("/meshes/default/secrets/token", json=secret)).status_code == 201
    body = (await admin.get("/meshes/default/secrets")).json()
    assert [i["name"] for i in body["items"]] == ["token"]
    assert (await admin.get("/meshes/default/secrets/token")).json()["data"] == "c2VjcmV0"

    for method, path in (
        ("GET", "/meshes/default/secrets"),
        ("GET", "/secrets"),
        ("GET", "/meshes/default/secrets/token"),
        ("DELETE", "/meshes/default/secrets/token"),
    ):
        r = await other.request(method, path)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["title"] == "access denied"
        assert "c2VjcmV0" not in r.text
    r = await other.put("/meshes/default/secrets/token", json={**secret, "data": "b3RoZXI="})
    assert r.status_code == 403
    assert (await store.get("Secret", "token", "default")).spec == decode(secret).spec
    # Other types stay open to non-admin clients.
    assert (await other.get("/meshes/default/dataplanes")).status_code == 200


class YieldingStore(MemoryStore):
    """A memory store that lets other tasks run before each read and write, as a real backend does."""

    async def get(self, type: str, name: str, mesh: str | None = None) -> Resource[Any]:
        await asyncio.sleep(0)
        return await super().get(type, name, mesh)

    async def create(self, resource: Resource[Any]) -> Resource[Any]:
        await asyncio.sleep(0)
        return await super().create(resource)

    async def update(self, resource: Resource[Any]) -> Resource[Any]:
        await asyncio.sleep(0)
        return await super().update(resource)


async def test_concurrent_unconditional_puts_all_land() -> None:
    store = YieldingStore()
    app = create_app(ApiDependencies(store, ApiInfo(version="t")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
        await put_mesh(api)
        addresses = [f"10.0.0.{i}" for i in range(1, 6)]
        responses = await asyncio.gather(
            *(api.put("/meshes/default/dataplanes/raced", json=dataplane("raced", address=a)) for a in addresses)
        )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201], [r.text for r in responses]
    stored = await store.get("Dataplane", "raced", "default")
    assert stored.meta.version == 5
    assert stored.spec.networking.address in addresses
