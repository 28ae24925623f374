"""The REST API with real authentication: token endpoints (admin only, every field validated),
401 for non-loopback clients without the admin token, open read-only GETs, ``loopback_admin``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from atoll.api.app import ApiDependencies, ApiInfo, create_app
from atoll.security import AdminAuth, TokenEndpoints, TokenIssuer, TokenVerifier, Unauthenticated
from atoll.store import Store
from tests.security.conftest import dataplane

ADMIN_TOKEN = "a" * 43
Factory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def make_client(store: Store) -> AsyncIterator[Factory]:
    clients: list[httpx.AsyncClient] = []

    async def make(
        *,
        addr: str = "127.0.0.1",
        bearer: str | None = None,
        loopback_admin: bool = True,
        tokens: bool = True,
        **kw: Any,
    ) -> httpx.AsyncClient:
        app = create_app(
            ApiDependencies(
                store,
                ApiInfo(version="test"),
                is_admin=AdminAuth(ADMIN_TOKEN, loopback_admin=loopback_admin),
                tokens=TokenEndpoints(TokenIssuer(store)) if tokens else None,
                **kw,
            )
        )
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        c = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(addr, 1234)), base_url="http://atoll.test", headers=headers
        )
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()


@pytest.fixture
async def admin(make_client: Factory) -> httpx.AsyncClient:
    c = await make_client()
    assert (await c.put("/meshes/default", json={"type": "Mesh", "name": "default"})).status_code == 201
    return c


def fields(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 400, r.text
    return {p["field"]: p["reason"] for p in r.json()["invalid_parameters"]}


async def test_dataplane_token_endpoint_issues_a_working_token(admin: httpx.AsyncClient, store: Store) -> None:
    r = await admin.post(
        "/tokens/dataplane", json={"mesh": "default", "name": "web-1", "tags": {"kuma.io/service": "web"}}
    )
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    claims = await TokenVerifier(store).dataplane_claims(token, dataplane())
    assert claims.tags == {"kuma.io/service": ("web",)}
    assert (claims.expires_at - claims.issued_at).total_seconds() == 720 * 3600  # default validFor


async def test_zone_token_and_revocation_endpoints(admin: httpx.AsyncClient, store: Store) -> None:
    r = await admin.post("/tokens/zone", json={"zone": "east", "scope": ["ingress"], "validFor": "1h"})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    verifier = TokenVerifier(store)
    await verifier.verify_zone(token, "east", "ingress")
    r = await admin.post("/tokens/revocations", json={"kind": "zone", "token": token})
    assert r.status_code == 200, r.text
    assert r.json()["revoked"] is True
    with pytest.raises(Unauthenticated, match="revoked"):
        await verifier.verify_zone(token, "east", "ingress")

    dp = (await admin.post("/tokens/dataplane", json={"mesh": "default", "name": "web-1"})).json()["token"]
    r = await admin.post("/tokens/revocations", json={"kind": "dataplane", "token": dp})
    assert r.json()["mesh"] == "default"  # taken from the token
    with pytest.raises(Unauthenticated, match="revoked"):
        await verifier.verify_dataplane(dp, dataplane())


async def test_token_requests_are_validated_field_by_field(admin: httpx.AsyncClient) -> None:
    assert fields(await admin.post("/tokens/dataplane", json={})) == {"mesh": "required"}
    bad = {"mesh": "default", "validFor": "3x", "proxyType": "sidecar", "tags": {"a": 1}, "extra": True, "name": "Web!"}
    got = fields(await admin.post("/tokens/dataplane", json=bad))
    assert set(got) == {"validFor", "proxyType", "tags.a", "extra", "name"}
    assert got["validFor"] == 'invalid duration "3x"'
    assert got["proxyType"].startswith("must be one of dataplane, ingress, egress")
    assert got["extra"].startswith("unknown field")
    assert fields(await admin.post("/tokens/dataplane", json={"mesh": "nope"})) == {
        "mesh": 'mesh "nope" does not exist'
    }
    assert set(fields(await admin.post("/tokens/dataplane", json={"mesh": "default", "validFor": "20y"}))) == {
        "validFor"
    }

    got = fields(await admin.post("/tokens/zone", json={"zone": "east", "scope": ["cp", "admin"], "validFor": 5}))
    assert set(got) == {"scope[1]", "validFor"}
    assert set(fields(await admin.post("/tokens/zone", json={"scope": []}))) == {"zone", "scope"}

    assert set(fields(await admin.post("/tokens/revocations", json={}))) == {"kind", "token"}
    got = fields(await admin.post("/tokens/revocations", json={"kind": "dataplane", "jti": "x"}))
    assert got == {"mesh": "required for kind dataplane (the mesh the token belongs to)"}
    got = fields(await admin.post("/tokens/revocations", json={"kind": "zone", "token": "garbage"}))
    assert set(got) == {"token"}
    r = await admin.post("/tokens/dataplane", content=b"[1]", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON object" in r.json()["details"]


async def test_non_loopback_clients_need_the_admin_token(make_client: Factory, admin: httpx.AsyncClient) -> None:
    anonymous = await make_client(addr="10.1.2.3")
    wrong = await make_client(addr="10.1.2.3", bearer="b" * 43)
    right = await make_client(addr="10.1.2.3", bearer=ADMIN_TOKEN)
    secret = {"type": "Secret", "name": "s", "mesh": "default", "data": "c2VjcmV0"}
    cases: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/tokens/dataplane", {"mesh": "default"}),
        ("POST", "/tokens/zone", {"zone": "east", "scope": ["cp"]}),
        ("POST", "/tokens/revocations", {"kind": "zone", "jti": "x"}),
        ("PUT", "/meshes/m2", {"type": "Mesh", "name": "m2"}),
        ("PUT", "/meshes/default/secrets/s", secret),
        ("GET", "/meshes/default/secrets", None),
        ("GET", "/globalsecrets", None),
        ("DELETE", "/meshes/default", None),
    ]
    for method, path, body in cases:
        r = await anonymous.request(method, path, json=body)
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["title"] == "unauthenticated"
        assert "Authorization: Bearer <admin token>" in r.json()["details"]
        r = await wrong.request(method, path, json=body)
        assert r.status_code == 401, (method, path, r.text)
        assert "not this control plane's admin token" in r.json()["details"]
    # Read-only GETs of non-secret resources stay open.
    assert (await anonymous.get("/meshes")).status_code == 200
    assert (await anonymous.get("/meshes/default/dataplanes")).status_code == 200
    assert (await anonymous.get("/")).status_code == 200
    # With the admin token, everything works.
    for method, path, body in cases:
        r = await right.request(method, path, json=body)
        assert r.status_code in (200, 201), (method, path, r.text)
    assert (await right.get("/meshes/m2")).status_code == 200


async def test_malformed_authorization_header(make_client: Factory) -> None:
    c = await make_client(addr="10.1.2.3")
    r = await c.put("/meshes/m", json={"type": "Mesh", "name": "m"}, headers={"Authorization": f"Basic {ADMIN_TOKEN}"})
    assert r.status_code == 401 and "must be 'Bearer <admin token>'" in r.json()["details"]


async def test_loopback_admin_can_be_turned_off(make_client: Factory) -> None:
    local = await make_client(loopback_admin=False)
    r = await local.put("/meshes/m", json={"type": "Mesh", "name": "m"})
    assert r.status_code == 401
    ipv6 = await make_client(addr="::1", loopback_admin=False, bearer=ADMIN_TOKEN)
    assert (await ipv6.put("/meshes/m", json={"type": "Mesh", "name": "m"})).status_code == 201


async def test_without_token_endpoints_the_routes_say_so(make_client: Factory) -> None:
    c = await make_client(tokens=False)
    r = await c.post("/tokens/dataplane", json={"mesh": "default"})
    assert r.status_code == 404 and r.json()["details"] == "this control plane issues no tokens"


async def test_plain_loopback_check_answers_403_for_other_writers(store: Store) -> None:
    app = create_app(ApiDependencies(store, ApiInfo(version="test")))  # the default is_admin: loopback only, no tokens
    transport = httpx.ASGITransport(app=app, client=("10.9.9.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://atoll.test") as c:
        r = await c.put("/meshes/m", json={"type": "Mesh", "name": "m"})
        assert r.status_code == 403 and r.json()["title"] == "access denied"
        assert (await c.post("/tokens/zone", json={})).status_code == 403


async def test_global_secrets_are_a_resource_type(admin: httpx.AsyncClient) -> None:
    r = await admin.put("/globalsecrets/sample", json={"type": "GlobalSecret", "name": "sample", "data": "dGVzdAo="})
    assert r.status_code == 201, r.text
    assert (await admin.get("/globalsecrets/sample")).json()["data"] == "dGVzdAo="
