"""The reconciler regenerates exactly the proxies a change affects, coalescing bursts (no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

from atoll.proxies.reconciler import ProxyReconciler
from atoll.resources import Resource, decode
from atoll.resources.proxy_id import NodeId
from atoll.store import MemoryStore
from atoll.xds.server import CLUSTER, ENDPOINT, SnapshotCache
from tests.helpers import await_until


def dp(name: str, service: str, port: int, reaches: tuple[str, ...] = (), ready: bool = True) -> Resource[Any]:
    inbound: dict[str, Any] = {"port": port, "tags": {"kuma.io/service": service}}
    if not ready:
        inbound["health"] = {"ready": False}
    return decode(
        {
            "type": "Dataplane",
            "mesh": "default",
            "name": name,
            "networking": {
                "address": "10.0.0.1",
                "inbound": [inbound],
                "outbound": [{"port": 20000 + i, "tags": {"kuma.io/service": s}} for i, s in enumerate(reaches)],
            },
        }
    )


async def _setup(window: float = 0.0) -> tuple[MemoryStore, SnapshotCache, ProxyReconciler, asyncio.Task[None]]:
    store = MemoryStore()
    await store.create(decode({"type": "Mesh", "name": "default"}))
    for r in (
        dp("backend-1", "backend", 8080),
        dp("db-1", "db", 5432),
        dp("web", "web", 8000, reaches=("backend",)),
        dp("worker", "worker", 8001, reaches=("db",)),
    ):
        await store.create(r)
    cache = SnapshotCache()
    rec = ProxyReconciler(store, cache, zone="zone-1", window=window)
    for node in ("default.web", "default.worker", "default.backend-1", "default.db-1"):
        cache.watch(node, lambda s: None)  # an open stream for each proxy
    task = asyncio.create_task(rec.run())
    await asyncio.wait_for(rec.ready.wait(), 5)
    return store, cache, rec, task


async def _stop(store: MemoryStore, task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await store.close()


def eds_addresses(cache: SnapshotCache, node: str, cluster: str) -> list[int]:
    snap = cache.get(node)
    assert snap is not None
    cla = snap.resources(ENDPOINT)[cluster].message
    return sorted(lb.endpoint.address.socket_address.port_value for loc in cla.endpoints for lb in loc.lb_endpoints)


async def test_every_connected_proxy_gets_a_snapshot_at_start() -> None:
    store, cache, _rec, task = await _setup()
    try:
        assert cache.node_ids() == {"default.web", "default.worker", "default.backend-1", "default.db-1"}
        assert eds_addresses(cache, "default.web", "backend") == [8080]
    finally:
        await _stop(store, task)


async def test_a_service_change_regenerates_only_the_proxies_that_reach_it() -> None:
    store, cache, rec, task = await _setup()
    try:
        before = {n: cache.get(n) for n in cache.node_ids()}
        await store.create(dp("backend-2", "backend", 8081))
        await await_until(
            lambda: eds_addresses(cache, "default.web", "backend") == [8080, 8081], what="web sees backend-2"
        )
        assert rec.last_pass is not None and rec.last_pass.generated == 1
        assert cache.get("default.worker") is before["default.worker"], "worker does not reach backend"
        assert cache.get("default.db-1") is before["default.db-1"]
        assert cache.get("default.backend-1") is before["default.backend-1"]
    finally:
        await _stop(store, task)


async def test_unready_inbound_leaves_eds_and_comes_back() -> None:
    store, cache, _rec, task = await _setup()
    try:
        cur = await store.get("Dataplane", "backend-1", "default")
        await store.update(dp("backend-1", "backend", 8080, ready=False).with_meta(version=cur.meta.version))
        await await_until(lambda: eds_addresses(cache, "default.web", "backend") == [], what="removed")
        cur = await store.get("Dataplane", "backend-1", "default")
        await store.update(dp("backend-1", "backend", 8080).with_meta(version=cur.meta.version))
        await await_until(lambda: eds_addresses(cache, "default.web", "backend") == [8080], what="back")
    finally:
        await _stop(store, task)


async def test_a_burst_of_changes_is_coalesced_into_one_pass() -> None:
    store, cache, rec, task = await _setup(window=0.2)
    try:
        passes = rec.passes
        for i in range(10):
            await store.create(dp(f"backend-{i + 10}", "backend", 9000 + i))
        await await_until(
            lambda: len(eds_addresses(cache, "default.web", "backend")) == 11, what="all ten new endpoints"
        )
        assert rec.passes - passes <= 2, f"10 writes within the window took {rec.passes - passes} passes"
        assert rec.last_pass is not None and rec.last_pass.events >= 5
    finally:
        await _stop(store, task)


async def test_mesh_wide_policy_regenerates_every_proxy_of_the_mesh() -> None:
    store, _cache, rec, task = await _setup()
    try:
        generated = rec.generated_total
        await store.create(
            decode(
                {
                    "type": "MeshTimeout",
                    "mesh": "default",
                    "name": "t",
                    "spec": {
                        "targetRef": {"kind": "Mesh"},
                        "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "20s"}}],
                    },
                }
            )
        )
        await await_until(lambda: rec.passes > 0 and rec.last_pass is not None and rec.last_pass.events > 0)
        # Every proxy's view was recomputed; proxies whose config did not change are not re-sent.
        assert rec.last_pass is not None
        assert rec.last_pass.generated + rec.last_pass.unchanged == 4
        assert rec.generated_total >= generated
    finally:
        await _stop(store, task)


async def test_a_mesh_update_reaches_every_proxy_of_the_mesh() -> None:
    """PERMISSIVE -> STRICT changes every inbound listener of the mesh (the mesh view is rebuilt)."""
    from datetime import UTC, datetime, timedelta

    from atoll.pki import generate_ca
    from atoll.xds.server import LISTENER

    ca = generate_ca("default", valid_for=timedelta(days=1), now=datetime.now(UTC))

    async def ca_source(mesh: Resource[Any]) -> Any:
        return ca

    def mtls_mesh(mode: str) -> Resource[Any]:
        backend = {"name": "ca-1", "type": "builtin", "mode": mode}
        return decode({"type": "Mesh", "name": "default", "mtls": {"enabledBackend": "ca-1", "backends": [backend]}})

    store = MemoryStore()
    await store.create(mtls_mesh("PERMISSIVE"))
    await store.create(dp("backend-1", "backend", 8080))
    cache = SnapshotCache()
    cache.watch("default.backend-1", lambda s: None)
    rec = ProxyReconciler(store, cache, zone="zone-1", window=0.0, ca_source=ca_source)
    task = asyncio.create_task(rec.run())
    try:
        await asyncio.wait_for(rec.ready.wait(), 5)

        def inbound_chains() -> int:
            snap = cache.get("default.backend-1")
            assert snap is not None
            (listener,) = [r.message for n, r in snap.resources(LISTENER).items() if n.startswith("inbound:")]
            return len(listener.filter_chains)

        assert inbound_chains() == 2, "PERMISSIVE: a TLS chain and a plaintext chain"
        mesh = await store.get("Mesh", "default")
        await store.update(mtls_mesh("STRICT").with_meta(version=mesh.meta.version))
        await await_until(lambda: inbound_chains() == 1, what="STRICT: the TLS chain only")
    finally:
        await _stop(store, task)


class _SlowDataplanes(MemoryStore):
    """A store whose Dataplane listing waits for ``release``: the reconciler is caught mid-load."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.listing = asyncio.Event()

    async def list(self, filter: Any, *, offset: int = 0, limit: int | None = None) -> Any:
        if filter.type == "Dataplane":
            self.listing.set()
            await self.release.wait()
        return await super().list(filter, offset=offset, limit=limit)


async def test_a_stream_opened_while_the_reconciler_loads_gets_its_config_once_loaded() -> None:
    """A CP restarting under connected proxies: streams open while the store is still being read. A
    proxy whose stream opened then must get its config from the first pass (it once got none: a mesh
    view built from half-loaded Dataplanes was kept and used by that pass)."""
    store = _SlowDataplanes()
    await store.create(decode({"type": "Mesh", "name": "default"}))
    await store.create(dp("backend-1", "backend", 8080))
    await store.create(dp("web", "web", 8000, reaches=("backend",)))
    cache = SnapshotCache()
    rec = ProxyReconciler(store, cache, zone="zone-1", window=0.0)
    task = asyncio.create_task(rec.run())
    try:
        await asyncio.wait_for(store.listing.wait(), 5)  # Meshes loaded, Dataplanes not yet
        assert rec.ensure(NodeId.parse("default.web")) is False  # as the stream opens: not yet
        cache.watch("default.web", lambda s: None)  # and the stream watches
        store.release.set()
        await asyncio.wait_for(rec.ready.wait(), 5)
        assert eds_addresses(cache, "default.web", "backend") == [8080]
    finally:
        await _stop(store, task)


def connect_timeout(cache: SnapshotCache, node: str, cluster: str) -> float:
    snap = cache.get(node)
    assert snap is not None
    return snap.resources(CLUSTER)[cluster].message.connect_timeout.ToTimedelta().total_seconds()


async def test_a_deleted_policy_stops_applying() -> None:
    """A reconciler ignoring policy deletions kept serving the removed policy's settings."""
    store, cache, _rec, task = await _setup()
    policy = decode(
        {
            "type": "MeshTimeout",
            "mesh": "default",
            "name": "slow-connect",
            "spec": {
                "targetRef": {"kind": "Mesh"},
                "to": [{"targetRef": {"kind": "Mesh"}, "default": {"connectionTimeout": "42s"}}],
            },
        }
    )
    try:
        before = connect_timeout(cache, "default.web", "backend")
        assert before != 42
        await store.create(policy)
        await await_until(lambda: connect_timeout(cache, "default.web", "backend") == 42, what="policy applied")
        await store.delete("MeshTimeout", "slow-connect", "default")
        await await_until(lambda: connect_timeout(cache, "default.web", "backend") == before, what="policy removed")
    finally:
        await _stop(store, task)
