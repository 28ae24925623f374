"""Write ownership through the REST API of federated CPs, the inventory routes at global, zone
authentication, one CP per zone, and KDS over TLS — real gRPC on loopback."""

from __future__ import annotations

from pathlib import Path

import httpx

from atoll.api.app import ApiDependencies, ApiInfo, create_app
from atoll.kds import ensure_self_signed, server_credentials
from atoll.kds.names import hashed_name
from atoll.resources import encode
from atoll.store import ListFilter, Store
from tests.helpers import await_until
from tests.kds.conftest import Federation
from tests.kds.data import dataplane, mesh, mtp


def _client(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://atoll.test")


async def test_federated_zone_refuses_policy_writes_and_global_refuses_dataplane_writes(
    federation: Federation,
) -> None:
    g = federation
    kds = await g.start_global()
    await g.global_store.create(mesh("default"))
    z1 = await g.start_zone("zone-1")
    await await_until(lambda: _has(z1.store, "Mesh"))
    zone_api = _client(
        create_app(ApiDependencies(z1.store, ApiInfo(version="t", mode="zone", zone="zone-1", federated=True)))
    )
    global_api = _client(
        create_app(
            ApiDependencies(
                g.global_store,
                ApiInfo(version="t", mode="global"),
                dataplane_insights=kds.inventory.insight,
                zone_insights=kds.inventory.zone_insight,
            )
        )
    )
    async with zone_api, global_api:
        r = await zone_api.put("/meshes/default/meshtrafficpermissions/x", json=encode(mtp("x")))
        assert r.status_code == 405, r.text
        assert "written on the global control plane" in r.text
        r = await zone_api.delete("/meshes/default")
        assert r.status_code == 405
        r = await zone_api.put("/meshes/default/dataplanes/web-1", json=encode(dataplane("web-1")))
        assert r.status_code == 201, r.text  # the zone's own resources are written there
        r = await global_api.put("/meshes/default/dataplanes/web-2", json=encode(dataplane("web-2")))
        assert r.status_code == 405 and "written on zone control planes" in r.text

        # The zone's Dataplane (written through its API) shows up at global with zone and state.
        z1.insights.append(("default", "web-1", {"online": True}))
        h = hashed_name("web-1", "zone-1", "default")

        async def listed() -> dict[str, object] | None:
            body = (await global_api.get("/meshes/default/dataplanes+insights")).json()
            items = [i for i in body["items"] if i["name"] == h and i["dataplaneInsight"].get("zone")]
            return items[0] if items else None

        item = await await_until(listed)
        assert item["labels"]["kuma.io/zone"] == "zone-1"  # type: ignore[index]
        assert item["dataplaneInsight"] == {"online": True, "zone": "zone-1"}

        body = (await global_api.get("/zones+insights")).json()
        assert body["total"] == 1 and body["next"] is None
        (zone,) = body["items"]
        assert zone["type"] == "Zone" and zone["name"] == "zone-1" and zone["enabled"] is True
        zi = zone["zoneInsight"]
        assert zi["online"] is True and zi["cpInstance"] == "instance-zone-1" and zi["cpVersion"] == "test"
        assert (
            zi["dataplanes"] == 1 and zi["connectedSince"] and set(zi["lastSync"]) == {"globalToZone", "zoneToGlobal"}
        )


async def _has(store: Store, type: str) -> bool:
    return (await store.list(ListFilter(type=type))).total > 0


async def test_bad_and_revoked_tokens_are_refused_with_the_reason(federation: Federation) -> None:
    g = federation
    await g.start_global()
    bad = await g.start_zone("zone-1", token="token-zone-2")
    await await_until(lambda: _error(bad, "UNAUTHENTICATED"))
    assert "not valid for zone zone-1" in (bad.client.last_error or "")
    assert not bad.client.connected and bad.client.connects == 0
    await g.stop_zone("zone-1")
    g.tokens.revoked.add("token-zone-3")
    revoked = await g.start_zone("zone-3")
    await await_until(lambda: _error(revoked, "revoked"))
    assert (await g.global_store.list(ListFilter(type="Zone"))).total == 0  # refused zones are not registered


async def _error(zone: object, text: str) -> bool:
    return text in (getattr(zone, "client").last_error or "")  # noqa: B009


async def test_a_second_cp_claiming_a_connected_zone_is_refused_and_the_same_instance_may_reconnect(
    federation: Federation, tmp_path: Path
) -> None:
    from atoll.store import MemoryStore

    g = federation
    kds = await g.start_global()
    first = await g.start_zone("zone-1", instance_id="cp-a")
    await await_until(lambda: _true(first.client.connected))
    intruder_store = MemoryStore()
    g.stores.append(intruder_store)
    intruder = await g.start_zone("zone-1", instance_id="cp-b", store=intruder_store)
    g.zones["zone-1-first"] = first  # keep both for cleanup
    await await_until(lambda: _error(intruder, "already connected from control plane instance cp-a"))
    assert not intruder.client.connected
    session = kds.registry.session("zone-1")
    assert session is not None and session.instance == "cp-a" and session.online
    await g.stop_zone("zone-1")  # the intruder gives up
    # The same instance reconnecting (e.g. after a network blip) is accepted.
    again = await g.start_zone("zone-1", instance_id="cp-a", store=first.store)
    await await_until(lambda: _true(again.client.connected))
    g.zones["zone-1-first"] = first


async def _true(value: bool) -> bool:
    return value


async def test_kds_over_tls_with_the_generated_certificate(federation: Federation, tmp_path: Path) -> None:
    cert, key = ensure_self_signed(tmp_path / "global")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert ensure_self_signed(tmp_path / "global") == (cert, key)  # kept, not regenerated
    g = federation
    g.credentials = server_credentials(cert, key)
    await g.start_global()
    await g.global_store.create(mesh("default"))
    z1 = await g.start_zone("zone-1", address=f"grpcs://127.0.0.1:{g.port}", ca_file=cert)
    await await_until(lambda: _has(z1.store, "Mesh"))
    await await_until(lambda: _true(z1.client.connected))
    await g.stop_zone("zone-1")
    # A zone that does not trust global's certificate never connects.
    other, _ = ensure_self_signed(tmp_path / "other")
    z2 = await g.start_zone("zone-2", address=f"grpcs://127.0.0.1:{g.port}", ca_file=other)
    await await_until(lambda: _true(z2.client.last_error is not None and "UNAVAILABLE" in z2.client.last_error))
    assert not z2.client.connected and z2.client.connects == 0
