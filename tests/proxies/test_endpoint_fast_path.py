"""The endpoint-only fast path serves exactly what full regeneration serves.

Two reconcilers follow the same store: one with the fast path (the default), one without. After every
change, each proxy's snapshot must hold the same resources (name and content version, per type) in
both. The changes walk through what the fast path must take (endpoints added, moved, made unready,
removed; zone-ingress weights) and what it must refuse (a service's first zone-ingress endpoint, a
protocol change, the proxy's own Dataplane, a policy, the Mesh) — and the fast reconciler must report
patched proxies for the former, so a fast path that silently never runs fails here too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from atoll.pki import CaBundle, generate_ca
from atoll.proxies.reconciler import REBASE_EVERY, ProxyReconciler
from atoll.resources import Resource, decode
from atoll.resources.proxy_id import NodeId
from atoll.store import MemoryStore
from atoll.xds.server import PUSH_ORDER, SnapshotCache
from atoll.xds.vocabulary import ENDPOINT
from tests.helpers import await_until

NODES = ("default.web", "default.worker", "default.backend-1")


def dp(name: str, service: str, port: int, *, reaches: tuple[str, ...] = (), **inbound: Any) -> Resource[Any]:
    tags = {"kuma.io/service": service, "kuma.io/protocol": inbound.pop("protocol", "http")}
    return decode(
        {
            "type": "Dataplane",
            "mesh": "default",
            "name": name,
            "networking": {
                "address": "10.0.0.1",
                "inbound": [{"port": port, "tags": tags, **inbound}],
                "outbound": [{"port": 20000 + i, "tags": {"kuma.io/service": s}} for i, s in enumerate(reaches)],
            },
        }
    )


def mesh(*, locality_aware: bool = False) -> Resource[Any]:
    backend = {"name": "ca-1", "type": "builtin"}
    spec: dict[str, Any] = {"mtls": {"enabledBackend": "ca-1", "backends": [backend]}}
    if locality_aware:
        spec["routing"] = {"localityAwareLoadBalancing": True}
    return decode({"type": "Mesh", "name": "default", **spec})


def remote_ingress(instances: int) -> Resource[Any]:
    return decode(
        {
            "type": "ZoneIngress",
            "name": "zone-2-ingress",
            "zone": "zone-2",
            "networking": {
                "address": "10.2.0.1",
                "port": 10001,
                "advertisedAddress": "10.2.0.1",
                "advertisedPort": 10001,
            },
            "availableServices": [
                {
                    "mesh": "default",
                    "instances": instances,
                    "tags": {"kuma.io/service": "backend", "kuma.io/protocol": "http"},
                },
            ],
        }
    )


class Pair:
    """A fast and a full reconciler over one store, each with its own cache and a stream per node."""

    def __init__(self, store: MemoryStore, ca: CaBundle, nodes: tuple[str, ...] = NODES) -> None:
        async def ca_source(_: Resource[Any]) -> CaBundle:
            return ca

        self.store = store
        self.fast_cache, self.full_cache = SnapshotCache(), SnapshotCache()
        self.fast = ProxyReconciler(store, self.fast_cache, zone="zone-1", window=0.0, ca_source=ca_source)
        # One certificate per proxy for both, so that secrets compare equal too.
        self.full = ProxyReconciler(
            store,
            self.full_cache,
            zone="zone-1",
            window=0.0,
            ca_source=ca_source,
            endpoint_fast_path=False,
            identities=self.fast.identities,
        )
        self.nodes = nodes
        for node in nodes:
            self.fast_cache.watch(node, lambda s: None)
            self.full_cache.watch(node, lambda s: None)
        self.tasks = [asyncio.create_task(self.fast.run()), asyncio.create_task(self.full.run())]

    def served(self, cache: SnapshotCache) -> dict[str, dict[str, dict[str, str]]]:
        out = {}
        for node in self.nodes:
            snap = cache.get(node)
            assert snap is not None, node
            out[node] = {t: {n: r.version for n, r in snap.resources(t).items()} for t in PUSH_ORDER}
        return out

    async def change(self, write: Callable[[], Any], *, patched: bool) -> None:
        fast_passes, full_passes = self.fast.passes, self.full.passes
        await write()
        await await_until(
            lambda: self.fast.passes > fast_passes and self.full.passes > full_passes, what="both reconciled"
        )
        assert self.served(self.fast_cache) == self.served(self.full_cache)
        last = self.fast.last_pass
        assert last is not None
        assert (last.patched > 0) is patched, last

    async def put(self, r: Resource[Any]) -> None:
        try:
            cur = await self.store.get(r.type, r.name, r.mesh)
        except Exception:
            await self.store.create(r)
        else:
            await self.store.update(r.with_meta(version=cur.meta.version))


@contextlib.asynccontextmanager
async def running_pair(extra: tuple[Resource[Any], ...] = ()) -> AsyncIterator[Pair]:
    store = MemoryStore()
    await store.create(mesh())
    for r in (
        dp("backend-1", "backend", 8080),
        dp("web", "web", 8000, reaches=("backend", "db")),
        dp("worker", "worker", 8001, reaches=("backend",)),
        dp("db-1", "db", 5432, protocol="tcp"),
        *extra,
    ):
        await store.create(r)
    nodes = NODES + tuple(str(NodeId.dataplane("default", r.name)) for r in extra)
    p = Pair(store, generate_ca("default", valid_for=timedelta(days=1), now=datetime.now(UTC)), nodes)
    try:
        await asyncio.wait_for(asyncio.gather(p.fast.ready.wait(), p.full.ready.wait()), 10)
        assert p.served(p.fast_cache) == p.served(p.full_cache)
        yield p
    finally:
        for t in p.tasks:
            t.cancel()
        await asyncio.gather(*p.tasks, return_exceptions=True)
        await store.close()


async def test_endpoint_changes_take_the_fast_path_and_serve_what_full_generation_serves() -> None:
    async with running_pair() as pair:
        await _endpoint_changes_take_the_fast_path_and_serve_what_full_generation_serves(pair)


async def _endpoint_changes_take_the_fast_path_and_serve_what_full_generation_serves(pair: Pair) -> None:
    await pair.change(lambda: pair.put(dp("backend-2", "backend", 8081)), patched=True)  # added
    await pair.change(lambda: pair.put(dp("backend-2", "backend", 8082)), patched=True)  # moved
    await pair.change(lambda: pair.put(dp("backend-2", "backend", 8082, health={"ready": False})), patched=True)
    await pair.change(lambda: pair.put(dp("backend-2", "backend", 8082)), patched=True)  # ready again
    await pair.change(lambda: pair.store.delete("Dataplane", "backend-2", "default"), patched=True)  # removed
    await pair.change(lambda: pair.put(dp("db-2", "db", 5433, protocol="tcp")), patched=True)


async def test_zone_ingress_weights_and_locality_priorities() -> None:
    async with running_pair() as pair:
        await _zone_ingress_weights_and_locality_priorities(pair)


async def _zone_ingress_weights_and_locality_priorities(pair: Pair) -> None:
    # The first zone-ingress endpoint adds outlier detection to the cluster: full path.
    await pair.change(lambda: pair.put(remote_ingress(2)), patched=False)
    await pair.change(lambda: pair.put(remote_ingress(5)), patched=True)  # only the weight changes
    await pair.change(lambda: pair.put(mesh(locality_aware=True)), patched=False)  # the Mesh: full path
    await pair.change(lambda: pair.put(remote_ingress(3)), patched=True)  # priorities kept
    await pair.change(lambda: pair.store.delete("ZoneIngress", "zone-2-ingress"), patched=False)


async def test_changes_that_are_not_endpoint_only_take_the_full_path() -> None:
    async with running_pair() as pair:
        await _changes_that_are_not_endpoint_only_take_the_full_path(pair)


async def _changes_that_are_not_endpoint_only_take_the_full_path(pair: Pair) -> None:
    # backend's inbounds now disagree on the protocol: every cluster and listener of it changes.
    await pair.change(lambda: pair.put(dp("backend-2", "backend", 8081, protocol="tcp")), patched=False)
    await pair.change(lambda: pair.put(dp("web", "web", 8000, reaches=("backend",))), patched=False)  # own DP
    policy = {
        "type": "MeshTimeout",
        "mesh": "default",
        "name": "t",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "20s"}}],
        },
    }
    await pair.change(lambda: pair.put(decode(policy)), patched=False)
    # and endpoint changes after those still go fast, and still agree
    await pair.change(lambda: pair.put(dp("backend-3", "backend", 8083, protocol="tcp")), patched=True)


async def test_untouched_proxies_do_not_keep_old_mesh_views_alive() -> None:
    # c-i reaches svc-i only: changing svc-0, svc-1, ... in turn touches one client each time, and each
    # untouched client's last view came from an older mesh view.
    k = 2 * REBASE_EVERY
    clients = tuple(dp(f"c-{i}", f"c-{i}", 7000 + i, reaches=(f"svc-{i}",)) for i in range(k))
    servers = tuple(dp(f"s-{i}", f"svc-{i}", 8500 + i) for i in range(k))
    async with running_pair(clients + servers) as pair:
        for i in range(k):
            await pair.change(lambda i=i: pair.put(dp(f"s-{i}", f"svc-{i}", 9000 + i)), patched=True)
            assert pair.fast.held_views() <= REBASE_EVERY + 2, f"after {i + 1} changes"
        # rebased proxies still take the fast path and still serve what full generation serves
        for i in (0, k - 1):
            await pair.change(lambda i=i: pair.put(dp(f"s-{i}", f"svc-{i}", 9500 + i)), patched=True)


def versioned(name: str, service: str, port: int, version: str) -> Resource[Any]:
    r = dp(name, service, port)
    spec = r.spec_dict()
    spec["networking"]["inbound"][0]["tags"]["version"] = version
    return decode({"type": "Dataplane", "mesh": "default", "name": name, **spec})


SPLIT_ROUTE = decode(
    {
        "type": "MeshHTTPRoute",
        "mesh": "default",
        "name": "split",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [
                {
                    "targetRef": {"kind": "MeshService", "name": "backend"},
                    "rules": [
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": "/split"}}],
                            "default": {
                                "backendRefs": [
                                    {"kind": "MeshServiceSubset", "name": "backend", "tags": {"version": "v1"}},
                                    {"kind": "MeshServiceSubset", "name": "backend", "tags": {"version": "v2"}},
                                    {"kind": "MeshService", "name": "reports"},
                                ]
                            },
                        }
                    ],
                }
            ],
        },
    }
)


def _assignment(pair: Pair, node: str, cluster: str) -> str:
    snap = pair.fast_cache.get(node)
    assert snap is not None
    found = snap.resources(ENDPOINT).get(cluster)
    return "" if found is None else str(found.message)


async def test_split_clusters_of_routes_take_the_fast_path() -> None:
    """A MeshHTTPRoute splitting backend by version and to ``reports`` (a service no proxy has an
    outbound for): endpoint changes of each split, and of ``reports``, are patched and agree with full
    generation; the proxies routing to ``reports`` get its endpoints although they do not list it."""
    async with running_pair((versioned("backend-v1", "backend", 8090, "v1"),)) as pair:
        await pair.change(lambda: pair.put(SPLIT_ROUTE), patched=False)  # a policy: full path
        assert "8090" in _assignment(pair, "default.web", "backend{version=v1}")
        await pair.change(lambda: pair.put(versioned("backend-v2", "backend", 8091, "v2")), patched=True)
        assert "8091" in _assignment(pair, "default.web", "backend{version=v2}")
        assert "8091" not in _assignment(pair, "default.web", "backend{version=v1}")
        await pair.change(lambda: pair.put(versioned("backend-v2", "backend", 8092, "v2")), patched=True)  # moved
        # A new service (its protocol is new): full path; moving it then: fast.
        await pair.change(lambda: pair.put(dp("reports-1", "reports", 9100)), patched=False)
        assert "9100" in _assignment(pair, "default.worker", "reports")
        await pair.change(lambda: pair.put(dp("reports-1", "reports", 9101)), patched=True)
        assert "9101" in _assignment(pair, "default.worker", "reports")
        await pair.change(lambda: pair.store.delete("Dataplane", "backend-v2", "default"), patched=True)
        assert "8092" not in _assignment(pair, "default.web", "backend{version=v2}")
