"""Policy inspection over REST: a proxy's policies per inbound/outbound, a policy's proxies, and the
``warnings`` a write answers with when part of what it stored is not enforced."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from atoll.api import paths
from atoll.api.app import ApiInfo
from tests.api.conftest import ClientFactory

MESH = "shop"


def _dp(name: str, service: str, outbounds: list[str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "type": "Dataplane",
        "mesh": MESH,
        "name": name,
        "labels": labels or {},
        "networking": {
            "address": "10.0.0.1",
            "inbound": [{"port": 8080, "tags": {"kuma.io/service": service, "kuma.io/protocol": "http"}}],
            "outbound": [{"port": 10001 + i, "tags": {"kuma.io/service": s}} for i, s in enumerate(outbounds)],
        },
    }


def _timeout(name: str, top: dict[str, Any], to: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    return {
        "type": "MeshTimeout",
        "mesh": MESH,
        "name": name,
        "spec": {"targetRef": top, "to": [{"targetRef": ref, "default": d} for ref, d in to]},
    }


POLICIES = [
    _timeout("a-mesh", {"kind": "Mesh"}, [({"kind": "Mesh"}, {"connectionTimeout": "2s"})]),
    _timeout("b-mesh", {"kind": "Mesh"}, [({"kind": "Mesh"}, {"connectionTimeout": "1s", "idleTimeout": "10s"})]),
    _timeout(
        "web-only",
        {"kind": "MeshService", "name": "web"},
        [({"kind": "MeshService", "name": "backend"}, {"idleTimeout": "30s"})],
    ),
    _timeout("dp-web-1", {"kind": "Dataplane", "name": "web-1"}, [({"kind": "Mesh"}, {"connectionTimeout": "3s"})]),
]


async def _setup(api: httpx.AsyncClient) -> None:
    r = await api.put(f"/meshes/{MESH}", json={"type": "Mesh", "name": MESH, "skipCreatingInitialPolicies": ["*"]})
    assert r.status_code == 201, r.text
    for doc in (_dp("web-1", "web", ["backend"]), _dp("web-2", "web", ["backend"]), _dp("backend-1", "backend", [])):
        r = await api.put(f"/meshes/{MESH}/dataplanes/{doc['name']}", json=doc)
        assert r.status_code == 201, r.text
    for doc in POLICIES:
        r = await api.put(f"/meshes/{MESH}/meshtimeouts/{doc['name']}", json=doc)
        assert r.status_code == 201, r.text
        assert "warnings" not in r.json()  # MeshTimeout to Mesh/MeshService: every field is enforced


async def test_dataplane_policies_lists_contributors_in_merge_order(api: httpx.AsyncClient) -> None:
    await _setup(api)
    r = await api.get(paths.expand(paths.DATAPLANE_POLICIES, mesh=MESH, name="web-1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dataplane"] == "web-1"
    assert [p["name"] for p in body["policies"]] == ["b-mesh", "a-mesh", "web-only", "dp-web-1"]
    (backend,) = body["outbounds"]
    (timeout,) = backend["kinds"]
    assert timeout["kind"] == "MeshTimeout" and timeout["enforced"] is True
    assert [(c["policy"], c["targetRef"]["kind"]) for c in timeout["contributions"]] == [
        ("b-mesh", "Mesh"),
        ("a-mesh", "Mesh"),
        ("dp-web-1", "Mesh"),
        ("web-only", "MeshService"),
    ]
    assert timeout["settings"]["connectionTimeout"] == 3.0
    assert timeout["settings"]["idleTimeout"] == 30.0
    (inbound,) = body["inbounds"]
    assert (inbound["service"], inbound["port"], inbound["kinds"]) == ("web", 8080, [])


async def test_dataplane_policies_of_another_proxy_differ(api: httpx.AsyncClient) -> None:
    await _setup(api)
    body = (await api.get(paths.expand(paths.DATAPLANE_POLICIES, mesh=MESH, name="web-2"))).json()
    (timeout,) = body["outbounds"][0]["kinds"]
    assert [c["policy"] for c in timeout["contributions"]] == ["b-mesh", "a-mesh", "web-only"]
    assert timeout["settings"]["connectionTimeout"] == 2.0


async def test_policy_dataplanes_lists_selected_proxies(api: httpx.AsyncClient) -> None:
    await _setup(api)
    r = await api.get(paths.expand(paths.POLICY_DATAPLANES, mesh=MESH, plural="meshtimeouts", name="web-only"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["type"], body["total"]) == ("MeshTimeout", 2)
    assert [(d["dataplane"], d["inbounds"], d["outbounds"]) for d in body["items"]] == [
        ("web-1", [], ["backend"]),  # selected through its web inbound; only to[] items, so no inbound
        ("web-2", [], ["backend"]),
    ]
    everywhere = await api.get(paths.expand(paths.POLICY_DATAPLANES, mesh=MESH, plural="meshtimeouts", name="a-mesh"))
    assert [d["dataplane"] for d in everywhere.json()["items"]] == ["backend-1", "web-1", "web-2"]


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        (paths.expand(paths.DATAPLANE_POLICIES, mesh=MESH, name="nope"), 404, "nope"),
        (paths.expand(paths.DATAPLANE_POLICIES, mesh="nomesh", name="web-1"), 404, "nomesh"),
        (paths.expand(paths.POLICY_DATAPLANES, mesh=MESH, plural="meshtimeouts", name="nope"), 404, "nope"),
        (paths.expand(paths.POLICY_DATAPLANES, mesh=MESH, plural="dataplanes", name="web-1"), 404, "meshtimeouts"),
    ],
)
async def test_inspection_errors_name_what_is_missing(
    api: httpx.AsyncClient, path: str, status: int, words: str
) -> None:
    await _setup(api)
    r = await api.get(path)
    assert r.status_code == status
    assert words in r.text


async def test_global_answers_from_its_store(make_client: ClientFactory) -> None:
    """A global CP serves no proxies, but has every zone's Dataplanes: it answers too."""
    local = await make_client()
    await _setup(local)  # the same store: written through a standalone API, read through a global one
    glob = await make_client(info=ApiInfo(version="test", mode="global"))
    r = await glob.get(paths.expand(paths.DATAPLANE_POLICIES, mesh=MESH, name="web-1"))
    assert r.status_code == 200
    assert [p["name"] for p in r.json()["policies"]] == ["b-mesh", "a-mesh", "web-only", "dp-web-1"]


async def test_write_of_a_kind_not_enforced_answers_with_a_warning(api: httpx.AsyncClient) -> None:
    await _setup(api)
    doc = {
        "type": "MeshLoadBalancingStrategy",
        "mesh": MESH,
        "name": "lb",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [
                {
                    "targetRef": {"kind": "MeshService", "name": "backend"},
                    "default": {"localityAwareness": {"localZone": {"affinityTags": [{"key": "zone"}]}}},
                }
            ],
        },
    }
    r = await api.put(f"/meshes/{MESH}/meshloadbalancingstrategies/lb", json=doc)
    assert r.status_code == 201
    assert r.json()["warnings"] == [
        "spec.to[0].default.localityAwareness.localZone: affinity tags within the local zone are not translated"
    ]
    assert r.json()["name"] == "lb"  # still the stored resource
    r = await api.put(f"/meshes/{MESH}/meshloadbalancingstrategies/lb", json=doc)
    assert r.status_code == 200 and len(r.json()["warnings"]) == 1  # an update says it again


async def test_write_of_a_virtual_outbound_has_no_warning_now_that_it_is_served(api: httpx.AsyncClient) -> None:
    await _setup(api)
    doc = {
        "type": "VirtualOutbound",
        "mesh": MESH,
        "name": "vo",
        "selectors": [{"match": {"kuma.io/service": "*"}}],
        "conf": {
            "host": "{{.service}}.mesh",
            "port": "80",
            "parameters": [{"name": "service", "tagKey": "kuma.io/service"}],
        },
    }
    r = await api.put(f"/meshes/{MESH}/virtual-outbounds/vo", json=doc)
    assert r.status_code == 201, r.text
    assert r.json().get("warnings", []) == []


async def test_openapi_documents_inspection_routes_and_put_warnings(api: httpx.AsyncClient) -> None:
    doc = (await api.get(paths.OPENAPI)).json()
    assert "get" in doc["paths"][paths.DATAPLANE_POLICIES]
    assert "get" in doc["paths"][paths.POLICY_DATAPLANES]
    put = doc["paths"]["/meshes/{mesh}/meshtimeouts/{name}"]["put"]
    assert "warnings" in put["responses"]["201"]["description"]
