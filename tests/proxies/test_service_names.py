"""The reconciler fills ``MeshView.names``: VIPs are allocated in the store once per new name, the
table changes only when the names do, and the endpoint fast path neither renders nor allocates."""

from __future__ import annotations

import asyncio
from typing import Any

from atoll.proxies.reconciler import PassStats, ProxyReconciler
from atoll.proxies.reconciler.mesh_views import LocalDestinations
from atoll.proxies.vips import VipAllocator
from atoll.resources import Resource, decode
from atoll.store import MemoryStore
from atoll.topology.service_names import ServiceNames
from atoll.xds.server import SnapshotCache
from tests.helpers import await_until


def dp(name: str, service: str, port: int, *, address: str = "10.0.0.1", **tags: str) -> Resource[Any]:
    return decode(
        {
            "type": "Dataplane",
            "mesh": "default",
            "name": name,
            "networking": {
                "address": address,
                "inbound": [{"port": port, "tags": {"kuma.io/service": service, **tags}}],
                "transparentProxying": {"redirectPortInbound": 15006, "redirectPortOutbound": 15001},
            },
        }
    )


async def _setup(*extra: Resource[Any], cidr: str = "240.0.0.0/4") -> tuple[MemoryStore, ProxyReconciler, Any]:
    store = MemoryStore()
    await store.create(decode({"type": "Mesh", "name": "default"}))
    for r in (dp("backend-1", "backend", 8080), dp("web-1", "web", 8000), *extra):
        await store.create(r)
    rec = ProxyReconciler(store, SnapshotCache(), zone="zone-1", window=0.0, vip_cidr=cidr)
    task = asyncio.create_task(rec.run())
    await asyncio.wait_for(rec.ready.wait(), 10)
    return store, rec, task


async def _stop(store: MemoryStore, task: Any) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await store.close()


def table(rec: ProxyReconciler) -> ServiceNames:
    view = rec.views.view("default")
    assert view is not None
    return view.names


def rows(names: ServiceNames) -> list[tuple[str, str, tuple[int, ...], str]]:
    return [(n.hostname, n.vip, n.ports, n.service) for n in names]


async def test_names_get_stable_vips_from_the_store() -> None:
    store, rec, task = await _setup()
    try:
        assert rows(table(rec)) == [
            ("backend.mesh", "240.0.0.1", (80, 8080), "backend"),
            ("web.mesh", "240.0.0.2", (80, 8000), "web"),
        ]
        stored = await store.get("VipAllocation", "vips", "default")
        assert [(e.hostname, e.vip) for e in stored.spec.entries] == [
            ("backend.mesh", "240.0.0.1"),
            ("web.mesh", "240.0.0.2"),
        ]
        before = table(rec)
        await store.create(dp("api-1", "api", 9000))
        await await_until(lambda: len(table(rec)) == 3, timeout=10)
        after = table(rec)
        assert rows(after)[0] == ("api.mesh", "240.0.0.3", (80, 9000), "api")
        assert [n for n in after if n.service != "api"] == list(before)  # nobody else moved
    finally:
        await _stop(store, task)


async def test_an_endpoint_only_change_keeps_the_table_and_writes_nothing() -> None:
    store, rec, task = await _setup()
    try:
        before = table(rec)
        alloc = await store.get("VipAllocation", "vips", "default")
        passes = rec.passes
        await store.create(dp("backend-2", "backend", 8080, address="10.0.0.2"))
        await await_until(lambda: rec.passes > passes, timeout=10)
        assert table(rec) is before
        assert (await store.get("VipAllocation", "vips", "default")).meta.version == alloc.meta.version
    finally:
        await _stop(store, task)


async def test_a_virtual_outbound_adds_its_names_without_moving_the_others() -> None:
    plain = decode(
        {
            "type": "Dataplane",
            "mesh": "default",
            "name": "plain-1",
            "networking": {"address": "10.0.0.9", "inbound": [{"port": 7000, "tags": {"kuma.io/service": "plain"}}]},
        }
    )
    store, rec, task = await _setup(plain)
    try:
        before = table(rec)
        vo = {
            "type": "VirtualOutbound",
            "mesh": "default",
            "name": "per-service",
            "selectors": [{"match": {"kuma.io/service": "backend"}}],
            "conf": {
                "host": "{{.svc}}.internal",
                "port": "8443",
                "parameters": [{"name": "svc", "tagKey": "kuma.io/service"}],
            },
        }
        await store.create(decode(vo))
        await await_until(lambda: len(table(rec)) == len(before) + 1, timeout=10)
        added = [n for n in table(rec) if n.origin == "VirtualOutbound/per-service"]
        assert [(n.hostname, n.vip, n.ports, n.service) for n in added] == [
            ("backend.internal", "240.0.0.4", (8443,), "backend")
        ]
        assert [n for n in table(rec) if n.origin == "service"] == list(before)
    finally:
        await _stop(store, task)


async def test_a_cidr_too_small_serves_no_new_name_and_says_why() -> None:
    store, rec, task = await _setup(dp("api-1", "api", 9000), cidr="10.9.0.0/30")
    try:
        assert len(table(rec)) == 0  # three names, two addresses: none allocated
        assert rec.vip_problem("default") == (
            "mesh default: 3 new hostname(s) need a VIP but only 2 address(es) of 10.9.0.0/30 are free;"
            " none was allocated (widen --vip-cidr)"
        )
        await store.delete("Dataplane", "api-1", "default")
        await await_until(lambda: len(table(rec)) == 2, timeout=10)
        assert rec.vip_problem("default") is None
    finally:
        await _stop(store, task)


async def test_a_new_name_regenerates_the_transparent_proxied_proxies_and_no_other() -> None:
    plain = decode(
        {
            "type": "Dataplane",
            "mesh": "default",
            "name": "plain-1",
            "networking": {"address": "10.0.0.9", "inbound": [{"port": 7000, "tags": {"kuma.io/service": "plain"}}]},
        }
    )
    store = MemoryStore()
    await store.create(decode({"type": "Mesh", "name": "default"}))
    for r in (dp("backend-1", "backend", 8080), dp("web-1", "web", 8000), plain):
        await store.create(r)
    cache = SnapshotCache()
    for node in ("default.backend-1", "default.web-1", "default.plain-1", "default.api-1"):
        cache.watch(node, lambda s: None)
    rec = ProxyReconciler(store, cache, zone="zone-1", window=0.0)
    task = asyncio.create_task(rec.run())
    try:
        await asyncio.wait_for(rec.ready.wait(), 10)
        plain_snapshot = cache.get("default.plain-1")
        assert plain_snapshot is not None
        passes: list[PassStats] = []
        flush = rec.flush

        def recorded(events: int = 0, started: float | None = None) -> PassStats:
            stats = flush(events, started)
            passes.append(stats)
            return stats

        rec.flush = recorded  # type: ignore[method-assign]
        await store.create(dp("api-1", "api", 9000))
        await await_until(lambda: cache.get("default.api-1") is not None and passes, timeout=10)
        assert any(n.service == "api" for n in table(rec))
        # The pass that served api.mesh visited api-1 (new) and the two transparent-proxied proxies.
        assert passes[0].events == 1 and passes[0].generated + passes[0].unchanged == 3, passes
        assert cache.get("default.plain-1") is plain_snapshot  # never visited: it does not read names
    finally:
        await _stop(store, task)


def test_local_destinations_keep_their_set_until_its_members_change() -> None:
    local = LocalDestinations()
    dps = {"b1": dp("backend-1", "backend", 8080), "b2": dp("backend-2", "backend", 8080, address="10.0.0.2")}
    first = local.update(dps)
    assert {(d.service, d.port) for d in first} == {("backend", 8080)}
    moved = {**dps, "b2": dp("backend-2", "backend", 8080, address="10.0.0.3")}  # an address only
    assert local.update(moved) is first
    assert local.update({"b1": dps["b1"]}) is first  # one of two equal instances gone
    grown = local.update({"b1": dps["b1"], "a1": dp("api-1", "api", 9000)})
    assert grown is not first and {d.service for d in grown} == {"backend", "api"}
    assert {d.service for d in local.update({"a1": dp("api-1", "api", 9000)})} == {"api"}


async def test_an_instance_that_may_not_allocate_writes_nothing_and_serves_what_the_leader_wrote() -> None:
    store = MemoryStore()
    await store.create(decode({"type": "Mesh", "name": "default"}))
    await store.create(dp("backend-1", "backend", 8080))
    follower = ProxyReconciler(store, SnapshotCache(), zone="zone-1", window=0.0)
    follower.vips.enabled = lambda: False
    task = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(follower.ready.wait(), 10)
        assert len(table(follower)) == 0
        assert await follower.vips.read("default") is None
        leader = VipAllocator(store)
        await leader.ensure("default", ["backend.mesh"], None)
        await await_until(lambda: rows(table(follower)) == [("backend.mesh", "240.0.0.1", (80, 8080), "backend")])
    finally:
        await _stop(store, task)
