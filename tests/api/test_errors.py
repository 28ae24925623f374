"""Every way a request can be wrong: the precise status and error body, and an unchanged store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from atoll.api.app import ApiInfo
from atoll.store import Store
from tests.api.conftest import YAML, ClientFactory, dataplane, put_mesh, snapshot


def fields(r: httpx.Response) -> dict[str, str]:
    body = r.json()
    assert set(body) == {"title", "details", "invalid_parameters"}, body
    return {p["field"]: p["reason"] for p in body["invalid_parameters"]}


@pytest.fixture
async def seeded(api: httpx.AsyncClient, store: Store) -> dict[str, Any]:
    """A mesh with one dataplane; returns the store snapshot that every error must leave as is."""
    await put_mesh(api)
    assert (await api.put("/meshes/default/dataplanes/web", json=dataplane("web"))).status_code == 201
    return await snapshot(store)


async def expect_unchanged(store: Store, before: dict[str, Any]) -> None:
    assert await snapshot(store) == before


async def test_invalid_yaml(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]) -> None:
    r = await api.put("/meshes/default/dataplanes/web", content="type: Dataplane\nname: [web\n", headers=YAML)
    assert r.status_code == 400
    assert r.json()["title"] == "invalid YAML"
    assert r.json()["details"] == "invalid YAML: line 3, column 1: expected ',' or ']', but got '<stream end>'"
    await expect_unchanged(store, seeded)


async def test_invalid_json(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]) -> None:
    r = await api.put(
        "/meshes/default/dataplanes/web", content='{"type": "Dataplane",', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["title"] == "invalid JSON"
    assert r.json()["details"].startswith("invalid JSON: line 1, column")
    await expect_unchanged(store, seeded)


async def test_unknown_type_in_the_body(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]) -> None:
    r = await api.put("/meshes/default/dataplanes/web", json={**dataplane("web"), "type": "Dataplan"})
    assert r.status_code == 400
    f = fields(r)
    assert list(f) == ["type"]
    assert f["type"].startswith('unsupported type "Dataplan"; known types: ')
    await expect_unchanged(store, seeded)


async def test_body_type_other_than_the_path(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]) -> None:
    r = await api.put("/meshes/default/dataplanes/web", json={"type": "Mesh", "name": "web"})
    assert r.status_code == 400
    assert fields(r) == {"type": '"Mesh" does not match the path, which holds Dataplane resources'}
    await expect_unchanged(store, seeded)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_unknown_type_in_the_path(
    api: httpx.AsyncClient, store: Store, seeded: dict[str, Any], method: str
) -> None:
    r = await api.request(method, "/meshes/default/dataplanez/web", json=dataplane("web"))
    assert r.status_code == 404
    assert r.json()["title"] == "unknown resource type"
    assert 'no resource type "dataplanez"' in r.json()["details"]
    assert "dataplanes" in r.json()["details"]
    r = await api.get("/meshes/default/dataplanez")
    assert r.status_code == 404
    await expect_unchanged(store, seeded)


async def test_unknown_field(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]) -> None:
    body = dataplane("web", address="10.9.9.9")
    body["networking"]["adress"] = "10.0.0.1"
    r = await api.put("/meshes/default/dataplanes/web", json=body)
    assert r.status_code == 400
    assert fields(r) == {"networking.adress": "unknown field"}
    assert r.json()["title"] == "invalid Dataplane"
    await expect_unchanged(store, seeded)


async def test_every_field_error_is_reported_at_once(
    api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]
) -> None:
    body = dataplane("other", address="10.9.9.9")
    body["networking"]["inbound"][0]["port"] = 70000
    body["networking"]["bogus"] = True
    r = await api.put("/meshes/default/dataplanes/web", json=body)
    assert r.status_code == 400
    f = fields(r)
    assert f["name"] == '"other" does not match the name in the path "web"'
    assert f["networking.bogus"] == "unknown field"
    assert "65535" in f["networking.inbound[0].port"]
    await expect_unchanged(store, seeded)


async def test_name_mismatch(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]) -> None:
    r = await api.put("/meshes/default/dataplanes/web", json=dataplane("web-2", address="10.9.9.9"))
    assert r.status_code == 400
    assert fields(r) == {"name": '"web-2" does not match the name in the path "web"'}
    r = await api.put("/meshes/other", json={"type": "Mesh", "name": "default"})
    assert r.status_code == 400
    assert fields(r) == {"name": '"default" does not match the name in the path "other"'}
    await expect_unchanged(store, seeded)


async def test_mesh_mismatch(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]) -> None:
    r = await api.put("/meshes/default/dataplanes/web", json=dataplane("web", mesh="prod"))
    assert r.status_code == 400
    assert fields(r) == {"mesh": '"prod" does not match the mesh in the path "default"'}
    await expect_unchanged(store, seeded)


async def test_mesh_on_a_global_type(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]) -> None:
    r = await api.put("/zones/east", json={"type": "Zone", "name": "east", "mesh": "default"})
    assert r.status_code == 400
    assert list(fields(r)) == ["mesh"]
    await expect_unchanged(store, seeded)


async def test_invalid_name_in_the_path(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]) -> None:
    r = await api.put("/meshes/Bad_Mesh", content="type: Mesh\n", headers=YAML)
    assert r.status_code == 400
    assert fields(r)["name"].startswith('invalid name "Bad_Mesh"')
    await expect_unchanged(store, seeded)


async def test_write_into_a_missing_mesh(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]) -> None:
    r = await api.put("/meshes/nope/dataplanes/web", json=dataplane("web", mesh="nope"))
    assert r.status_code == 404
    assert r.json() == {
        "title": "not found",
        "details": 'mesh: mesh "nope" does not exist',
        "invalid_parameters": [{"field": "mesh", "reason": 'mesh "nope" does not exist'}],
    }
    r = await api.get("/meshes/nope/dataplanes")
    assert r.status_code == 404
    assert r.json()["details"] == 'mesh: mesh "nope" does not exist'
    await expect_unchanged(store, seeded)


async def test_stale_if_match(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]) -> None:
    r = await api.put(
        "/meshes/default/dataplanes/web", json=dataplane("web", address="10.9.9.9"), headers={"If-Match": "5"}
    )
    assert r.status_code == 409
    assert r.json()["title"] == "conflict"
    assert "version 5 is stale, stored version is 1" in r.json()["details"]
    # If-Match on a resource that does not exist cannot hold either.
    r = await api.put("/meshes/default/dataplanes/new", json=dataplane("new"), headers={"If-Match": "1"})
    assert r.status_code == 409
    assert "does not exist" in r.json()["details"]
    await expect_unchanged(store, seeded)


@pytest.mark.parametrize("value", ["abc", "0", "-3", '"x"'])
async def test_malformed_if_match(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any], value: str) -> None:
    r = await api.put("/meshes/default/dataplanes/web", json=dataplane("web"), headers={"If-Match": value})
    assert r.status_code == 400
    assert list(fields(r)) == ["If-Match"]
    await expect_unchanged(store, seeded)


async def test_oversized_body(make_client: ClientFactory, store: Store, seeded: dict[str, Any]) -> None:
    small = await make_client(max_body_bytes=2048)
    body = dataplane("web", address="10.9.9.9")
    body["labels"] = {"padding": "x" * 4096}
    r = await small.put("/meshes/default/dataplanes/web", json=body)
    assert r.status_code == 413
    assert r.json()["title"] == "request body too large"
    assert "2048 bytes" in r.json()["details"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while reading
        data = json.dumps(body).encode()
        for i in range(0, len(data), 512):
            yield data[i : i + 512]

    r = await small.put(
        "/meshes/default/dataplanes/web", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    # The same body under the limit is fine.
    del body["labels"]
    assert (await small.put("/meshes/default/dataplanes/web2", json={**body, "name": "web2"})).status_code == 201
    seeded_after = await snapshot(store)
    assert [d["name"] for d in seeded_after["Dataplane"]] == ["web", "web2"]
    assert seeded_after["Dataplane"][0] == seeded["Dataplane"][0]


@pytest.mark.parametrize("ct", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
async def test_wrong_content_type(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any], ct: str) -> None:
    r = await api.put(
        "/meshes/default/dataplanes/web", content=json.dumps(dataplane("web")), headers={"content-type": ct}
    )
    assert r.status_code == 415
    assert r.json()["details"] == f'content type "{ct}" is not supported; send application/json or application/yaml'
    await expect_unchanged(store, seeded)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/meshes", "GET"),
        ("PUT", "/meshes", "GET"),
        ("POST", "/meshes/default/dataplanes/web", "GET, PUT, DELETE"),
        ("PATCH", "/zones/east", "GET, PUT, DELETE"),
        ("DELETE", "/meshes/default/dataplanes", "GET"),
    ],
)
async def test_method_not_allowed(
    api: httpx.AsyncClient, store: Store, seeded: dict[str, Any], method: str, path: str, allowed: str
) -> None:
    r = await api.request(method, path, json={})
    assert r.status_code == 405
    assert r.json()["title"] == "method not allowed"
    assert r.json()["details"].startswith(f"{method} is not allowed on {path}; allowed: ")
    assert set(r.headers["allow"].split(", ")) == set(allowed.split(", "))
    await expect_unchanged(store, seeded)


async def test_several_documents_in_one_body(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]) -> None:
    r = await api.put("/meshes/x", content="type: Mesh\nname: x\n---\ntype: Mesh\nname: y\n", headers=YAML)
    assert r.status_code == 400
    assert r.json()["details"] == "expected one resource in the body, got 2 documents"
    r = await api.put("/meshes/x", content="", headers=YAML)
    assert r.status_code == 400
    assert r.json()["details"] == "expected one resource in the body, got 0 documents"
    await expect_unchanged(store, seeded)


async def test_body_that_is_not_a_mapping(api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]) -> None:
    r = await api.put("/meshes/x", json=[{"type": "Mesh", "name": "x"}])
    assert r.status_code == 400
    assert r.json()["details"] == "a resource must be a mapping, got a list"
    await expect_unchanged(store, seeded)


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ("size=0", "size", "must be 1..1000, got 0"),
        ("size=5000", "size", "must be 1..1000, got 5000"),
        ("size=ten", "size", 'must be a whole number, got "ten"'),
        ("offset=-1", "offset", 'must be a whole number, got "-1"'),
    ],
)
async def test_bad_paging_parameters(api: httpx.AsyncClient, query: str, field: str, reason: str) -> None:
    r = await api.get(f"/meshes?{query}")
    assert r.status_code == 400
    assert fields(r) == {field: reason}


async def test_unknown_path(api: httpx.AsyncClient) -> None:
    r = await api.get("/no/such/thing")
    assert r.status_code == 404
    assert r.json() == {"title": "not found", "details": "no such path: /no/such/thing", "invalid_parameters": []}


async def test_create_of_an_existing_resource_through_if_match_conflicts_not_duplicates(
    api: httpx.AsyncClient, store: Store, seeded: dict[str, Any]
) -> None:
    # Two writers with the same If-Match: the second is stale.
    ok = await api.put(
        "/meshes/default/dataplanes/web", json=dataplane("web", address="10.0.0.7"), headers={"If-Match": "1"}
    )
    assert ok.status_code == 200
    late = await api.put(
        "/meshes/default/dataplanes/web", json=dataplane("web", address="10.0.0.8"), headers={"If-Match": "1"}
    )
    assert late.status_code == 409
    assert (await store.get("Dataplane", "web", "default")).spec.networking.address == "10.0.0.7"


async def test_global_cp_refuses_zone_owned_writes(make_client: ClientFactory, store: Store) -> None:
    glob = await make_client(info=ApiInfo(version="t", mode="global"))
    await put_mesh(glob)
    before = await snapshot(store)
    r = await glob.put("/meshes/default/dataplanes/web", json=dataplane("web"))
    assert r.status_code == 405
    assert r.json()["title"] == "read-only on global"
    assert "written on zone control planes" in r.json()["details"]
    await expect_unchanged(store, before)


async def test_federated_zone_refuses_global_owned_writes(make_client: ClientFactory, store: Store) -> None:
    zone = await make_client(info=ApiInfo(version="t", mode="zone", zone="east", federated=True))
    r = await zone.put("/meshes/default", json={"type": "Mesh", "name": "default"})
    assert r.status_code == 405
    assert "written on the global control plane" in r.json()["details"]
    assert await snapshot(store) == {}
    assert (await zone.get("/meshes")).status_code == 200
