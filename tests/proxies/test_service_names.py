"""The reconciler fills ``MeshView.names``: VIPs are allocated in the store once per new name, the
table changes only when the names do, and the endpoint fast path neither renders nor allocates."""

from __future__ import annotations

import asyncio
from typing import Any

from atoll.proxies.reconciler import ProxyReconciler
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
