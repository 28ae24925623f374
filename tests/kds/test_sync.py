"""Global + two zones syncing over real gRPC on loopback, with memory and SQLite stores."""

from __future__ import annotations

from typing import Any

from atoll.errors import NotFound
from atoll.kds.names import DISPLAY_NAME, ORIGIN, ZONE, hashed_name
from atoll.kds.pump import MAX_STALE
from atoll.resources import Resource, decode
from atoll.store import ListFilter, Put, Store
from tests.helpers import await_until
from tests.kds.conftest import Federation
from tests.kds.data import dataplane, mesh, mtp, zone_ingress


async def names(store: Store, type: str, mesh: str | None = None) -> list[str]:
    return [r.name for r in (await store.list(ListFilter(type=type, mesh=mesh))).items]


async def get(store: Store, type: str, name: str, mesh: str | None = None) -> Resource[Any] | None:
    try:
        return await store.get(type, name, mesh)
    except NotFound:
        return None


async def test_policy_created_at_global_reaches_both_zones_with_origin_labels(federation: Federation) -> None:
    g = federation
    await g.start_global()
    await g.global_store.create(mesh("default"))
    z1 = await g.start_zone("zone-1")
    z2 = await g.start_zone("zone-2")
    await g.global_store.create(mtp("allow-all"))
    for z in (z1, z2):
        got = await await_until(lambda z=z: get(z.store, "MeshTrafficPermission", "allow-all", "default"))
        assert got.meta.labels == {ORIGIN: "global"}
        assert got.spec == mtp("allow-all").spec
        assert (await z.store.get("Mesh", "default")).meta.labels == {ORIGIN: "global"}
    # Global created a Zone resource for each zone; every zone knows them all.
    assert await names(g.global_store, "Zone") == ["zone-1", "zone-2"]
    await await_until(lambda: _eq(names(z1.store, "Zone"), ["zone-1", "zone-2"]))
    # An update flows as a delta.
    await g.global_store.update(await g.global_store.get("MeshTrafficPermission", "allow-all", "default"))
    changed = mtp("allow-all", action="Deny")
    cur = await g.global_store.get("MeshTrafficPermission", "allow-all", "default")
    await g.global_store.update(changed.with_meta(version=cur.meta.version))

    async def denied(store: Store) -> bool:
        r = await get(store, "MeshTrafficPermission", "allow-all", "default")
        return r is not None and r.spec == changed.spec

    await await_until(lambda: denied(z1.store))
    await await_until(lambda: denied(z2.store))
    assert z1.client.connected and z1.client.last_error is None


async def _eq(coro: Any, expected: object) -> bool:
    return bool(await coro == expected)


async def test_deleted_at_global_while_a_zone_is_away_is_gone_after_it_reconnects(federation: Federation) -> None:
    g = federation
    await g.start_global()
    await g.global_store.create(mesh("default"))
    await g.global_store.create(mtp("a"))
    await g.global_store.create(mtp("b"))
    z1 = await g.start_zone("zone-1")
    await await_until(lambda: _eq(names(z1.store, "MeshTrafficPermission"), ["a", "b"]))
    local = await z1.store.create(dataplane("web-1"))  # the zone's own resource: never deleted by sync
    await g.stop_zone("zone-1")
    assert not z1.client.connected
    await g.global_store.delete("MeshTrafficPermission", "a", "default")
    await g.global_store.create(mtp("c"))
    z1 = await g.start_zone("zone-1")
    await await_until(lambda: _eq(names(z1.store, "MeshTrafficPermission"), ["b", "c"]))
    assert (await z1.store.get("Dataplane", "web-1", "default")).meta.version == local.meta.version
    assert z1.client.connects == 1


async def test_zone_dataplanes_reach_global_renamed_and_never_flow_back(federation: Federation) -> None:
    g = federation
    await g.start_global()
    await g.global_store.create(mesh("default"))
    z1 = await g.start_zone("zone-1")
    z2 = await g.start_zone("zone-2")
    await await_until(lambda: get(z1.store, "Mesh", "default"))
    await z1.store.create(dataplane("web-1", team="payments"))
    await z2.store.create(dataplane("web-1", port=9090))  # the same name in another zone
    h1, h2 = hashed_name("web-1", "zone-1", "default"), hashed_name("web-1", "zone-2", "default")
    assert h1 != h2
    await await_until(lambda: _eq(names(g.global_store, "Dataplane", "default"), sorted([h1, h2])))
    copy = await g.global_store.get("Dataplane", h1, "default")
    assert dict(copy.meta.labels) == {"team": "payments", ORIGIN: "zone", ZONE: "zone-1", DISPLAY_NAME: "web-1"}
    assert copy.spec == dataplane("web-1").spec
    assert (await g.global_store.get("Dataplane", h2, "default")).spec.networking.inbound[0].port == 9090
    # Deleting it in the zone deletes global's copy; the other zone's copy stays.
    await z1.store.delete("Dataplane", "web-1", "default")
    await await_until(lambda: _eq(names(g.global_store, "Dataplane", "default"), [h2]))
    assert await names(z1.store, "Dataplane") == [] and await names(z2.store, "Dataplane") == ["web-1"]


async def test_zone_ingress_reaches_the_other_zones_only_while_its_zone_is_enabled(federation: Federation) -> None:
    g = federation
    await g.start_global()
    z1 = await g.start_zone("zone-1")
    z2 = await g.start_zone("zone-2")
    await z1.store.create(zone_ingress("ingress", "zone-1"))
    h = hashed_name("ingress", "zone-1", None)
    copy = await await_until(lambda: get(z2.store, "ZoneIngress", h))
    assert copy.meta.labels[ORIGIN] == "global" and copy.meta.labels[ZONE] == "zone-1"
    assert copy.meta.labels[DISPLAY_NAME] == "ingress"
    assert copy.spec == zone_ingress("ingress", "zone-1").spec
    assert await names(z1.store, "ZoneIngress") == ["ingress"]  # never back to its own zone
    assert await names(g.global_store, "ZoneIngress") == [h]
    # zone-2's copy does not go back up to global as zone-2's own.
    await z2.store.create(zone_ingress("ingress", "zone-2", port=10002))
    h2 = hashed_name("ingress", "zone-2", None)
    await await_until(lambda: get(z1.store, "ZoneIngress", h2))
    assert sorted(await names(g.global_store, "ZoneIngress")) == sorted([h, h2])
    # Disabling zone-1 removes its ingress from the other zones.
    cur = await g.global_store.get("Zone", "zone-1")
    await g.global_store.update(
        decode({"type": "Zone", "name": "zone-1", "enabled": False}).with_meta(version=cur.meta.version)
    )
    await await_until(lambda: _eq(names(z2.store, "ZoneIngress"), ["ingress"]))
    zone1 = await await_until(lambda: get(z2.store, "Zone", "zone-1"))
    await await_until(lambda: _disabled(z2.store))
    assert zone1 is not None
    assert await names(z1.store, "ZoneIngress") == ["ingress", h2]


async def _disabled(store: Store) -> bool:
    z = await get(store, "Zone", "zone-1")
    return z is not None and z.spec.enabled is False


async def test_a_resource_the_zone_cannot_read_is_nacked_without_wedging_the_stream(federation: Federation) -> None:
    g = federation
    await g.start_global()
    assert g.kds is not None
    z1 = await g.start_zone("zone-1")
    await await_until(lambda: _eq(names(z1.store, "Zone"), ["zone-1"]))
    good = await g.global_store.create(mesh("default"))
    # Stores do not validate names; the zone's decoder does: this Mesh is refused there.
    await g.global_store.create(good.with_meta(name="Bad_Name", version=0))
    session = g.kds.registry.session("zone-1")
    assert session is not None
    await await_until(lambda: _true(session.nacks >= 1), what="a NACK from the zone")
    assert session.last_error is not None and "Bad_Name" in session.last_error
    # The stream still works: later changes arrive, the good Mesh was applied.
    await g.global_store.create(mtp("after"))
    await await_until(lambda: get(z1.store, "MeshTrafficPermission", "after", "default"))
    assert await names(z1.store, "Mesh") == ["default"]


async def _true(value: bool) -> bool:
    return value


async def test_insights_flow_up_and_back_the_inventory(federation: Federation) -> None:
    g = federation
    kds = await g.start_global()
    await g.global_store.create(mesh("default"))
    z1 = await g.start_zone("zone-1")
    await z1.store.create(dataplane("web-1"))
    z1.insights.append(("default", "web-1", {"online": True, "connectedSince": "2026-01-01T00:00:00+00:00"}))
    h = hashed_name("web-1", "zone-1", "default")
    insight = await await_until(lambda: _insight(kds.inventory.insight, "default", h))
    assert insight["online"] is True and insight["zone"] == "zone-1"
    zi = await kds.inventory.zone_insight("zone-1")
    assert zi["online"] is True and zi["dataplanes"] == 1 and zi["cpInstance"] == "instance-zone-1"
    assert zi["lastSync"]["zoneToGlobal"] is not None
    await await_until(lambda: _last_g2z(kds, "zone-1"))
    # The zone goes away: its proxies show offline at global, the zone too.
    await g.stop_zone("zone-1")
    await await_until(lambda: _offline(kds, "default", h))
    zi = await kds.inventory.zone_insight("zone-1")
    assert zi["online"] is False and zi["disconnectedAt"] is not None


async def _insight(fn: Any, mesh: str, name: str) -> Any:
    return fn(mesh, name)


async def _offline(kds: Any, mesh: str, name: str) -> bool:
    i = kds.inventory.insight(mesh, name)
    return i is not None and i["online"] is False


async def _last_g2z(kds: Any, zone: str) -> bool:
    return (await kds.inventory.zone_insight(zone))["lastSync"]["globalToZone"] is not None


async def test_zones_reconnect_after_a_global_restart_and_catch_up(federation: Federation) -> None:
    g = federation
    await g.start_global()
    await g.global_store.create(mesh("default"))
    await g.global_store.create(mtp("before"))
    z1 = await g.start_zone("zone-1")
    await z1.store.create(dataplane("web-1"))
    h = hashed_name("web-1", "zone-1", "default")
    await await_until(lambda: get(g.global_store, "Dataplane", h, "default"))
    await await_until(lambda: get(z1.store, "MeshTrafficPermission", "before", "default"))
    assert g.kds is not None
    await g.kds.stop()  # global goes away; both sides change meanwhile
    await await_until(lambda: _true(not z1.client.connected), what="zone noticed")
    await g.global_store.delete("MeshTrafficPermission", "before", "default")
    await g.global_store.create(mtp("during"))
    await z1.store.delete("Dataplane", "web-1", "default")
    await z1.store.create(dataplane("web-2"))
    await g.restart_global()
    await await_until(lambda: _eq(names(z1.store, "MeshTrafficPermission"), ["during"]))
    h2 = hashed_name("web-2", "zone-1", "default")
    await await_until(lambda: _eq(names(g.global_store, "Dataplane", "default"), [h2]))
    await await_until(lambda: _true(z1.client.connects == 2))


async def test_single_changes_and_bulk_changes_of_zone_dataplanes_reach_global(federation: Federation) -> None:
    """One changed Dataplane is re-read alone and patched into what the zone sends; more than
    ``MAX_STALE`` at once reload the type. Either way global ends up with exactly the zone's set."""
    g = federation
    await g.start_global()
    await g.global_store.create(mesh("default"))
    z1 = await g.start_zone("zone-1")
    await await_until(lambda: get(z1.store, "Mesh", "default"))
    await z1.store.create(dataplane("web-0"))

    def at_global(name: str) -> str:
        return hashed_name(name, "zone-1", "default")

    async def global_port(name: str) -> int | None:
        r = await get(g.global_store, "Dataplane", at_global(name), "default")
        return None if r is None else int(r.spec.networking.inbound[0].port)

    await await_until(lambda: _eq(global_port("web-0"), 8080))
    bulk = MAX_STALE + 20  # one transaction: more stale resources than the patch path takes
    await z1.store.apply([Put(dataplane(f"web-{i}", port=9000 + i)) for i in range(bulk)])
    expected = sorted(at_global(f"web-{i}") for i in range(bulk))
    await await_until(lambda: _eq(names(g.global_store, "Dataplane", "default"), expected), what="bulk")
    assert await global_port("web-0") == 9000 and await global_port(f"web-{bulk - 1}") == 9000 + bulk - 1
    # single changes: an update, a delete, a create, each one a patch of the desired set
    await z1.store.apply([Put(dataplane("web-3", port=7003))])
    await await_until(lambda: _eq(global_port("web-3"), 7003), what="update")
    await z1.store.delete("Dataplane", "web-4", "default")
    await await_until(lambda: _eq(global_port("web-4"), None), what="delete")
    await z1.store.create(dataplane("late", port=7777))
    await await_until(lambda: _eq(global_port("late"), 7777), what="create")
    expected = sorted({*expected, at_global("late")} - {at_global("web-4")})
    assert await names(g.global_store, "Dataplane", "default") == expected
