"""The reconciler serves zone egresses: a snapshot per egress node (``egress:<name>``), an identity
``spiffe://<mesh>/zone-egress`` per mesh it terminates for, regenerated when ExternalServices, the
egress itself or remote ingresses change; sidecars switch to the egress with ``routing.zoneEgress``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from atoll.pki import CaBundle, certificate_uris, generate_ca
from atoll.proxies.reconciler import ProxyKind, ProxyReconciler
from atoll.resources import Resource, decode
from atoll.resources.proxy_id import NodeId
from atoll.store import MemoryStore
from atoll.xds.server import CLUSTER, ENDPOINT, LISTENER, SECRET, SnapshotCache
from tests.helpers import await_until

CA = generate_ca("default", rsa_bits=2048, valid_for=timedelta(days=1), now=datetime.now(UTC))


async def ca_source(mesh: Resource[Any]) -> CaBundle | None:
    return CA


def mesh(zone_egress: bool) -> Resource[Any]:
    return decode(
        {
            "type": "Mesh",
            "name": "default",
            "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]},
            "routing": {"zoneEgress": zone_egress},
        }
    )


WEB = {
    "type": "Dataplane",
    "mesh": "default",
    "name": "web",
    "networking": {
        "address": "10.0.0.1",
        "inbound": [{"port": 8000, "tags": {"kuma.io/service": "web"}}],
        "outbound": [
            {"port": 20001, "tags": {"kuma.io/service": "backend"}},
            {"port": 20002, "tags": {"kuma.io/service": "ext"}},
        ],
    },
}
REMOTE_INGRESS = {
    "type": "ZoneIngress",
    "name": "ingress-zone-2",
    "labels": {"kuma.io/origin": "global"},
    "zone": "zone-2",
    "networking": {"address": "10.2.0.1", "advertisedAddress": "192.168.2.1", "advertisedPort": 10001},
    "availableServices": [{"tags": {"kuma.io/service": "backend"}, "instances": 2, "mesh": "default"}],
}
EGRESS = {"type": "ZoneEgress", "name": "egress-1", "zone": "zone-1", "networking": {"address": "10.0.0.9"}}
EXT = {
    "type": "ExternalService",
    "mesh": "default",
    "name": "ext",
    "networking": {"address": "203.0.113.7:80"},
    "tags": {"kuma.io/service": "ext"},
}


async def _setup() -> tuple[MemoryStore, SnapshotCache, ProxyReconciler, asyncio.Task[None]]:
    store = MemoryStore()
    await store.create(mesh(zone_egress=False))
    for doc in (WEB, REMOTE_INGRESS, EGRESS):
        await store.create(decode(doc))
    cache = SnapshotCache()
    rec = ProxyReconciler(store, cache, zone="zone-1", window=0.0, ca_source=ca_source)
    cache.watch("default.web", lambda s: None)
    cache.watch(str(NodeId.egress("egress-1")), lambda s: None)
    task = asyncio.create_task(rec.run())
    await asyncio.wait_for(rec.ready.wait(), 5)
    assert rec.ensure(NodeId.parse("default.web"))
    assert rec.ensure(NodeId.egress("egress-1"), ProxyKind.EGRESS)
    return store, cache, rec, task


def names(cache: SnapshotCache, node: str, type_url: str) -> set[str]:
    snap = cache.get(node)
    return set(snap.resources(type_url)) if snap is not None else set()


def eds(cache: SnapshotCache, node: str, cluster: str) -> list[tuple[str, int, str]]:
    snap = cache.get(node)
    assert snap is not None
    cla = snap.resources(ENDPOINT)[cluster].message
    return [
        (lb.endpoint.address.socket_address.address, lb.load_balancing_weight.value, group.locality.zone)
        for group in cla.endpoints
        for lb in group.lb_endpoints
    ]


async def test_egress_snapshot_follows_external_services_and_sidecars_follow_the_routing_flag() -> None:
    store, cache, _rec, task = await _setup()
    try:
        node = str(NodeId.egress("egress-1"))
        assert names(cache, node, LISTENER) == {"egress:10.0.0.9:10002"}
        assert eds(cache, node, "default:backend") == [("192.168.2.1", 2, "zone-2")]
        assert eds(cache, "default.web", "backend") == [("192.168.2.1", 2, "zone-2")]

        await store.create(decode(EXT))
        await await_until(lambda: "external:default:ext" in names(cache, node, CLUSTER), timeout=5)
        secrets = cache.get(node).resources(SECRET)  # type: ignore[union-attr]
        cert = secrets["identity_cert:secret:default"].message.tls_certificate.certificate_chain.inline_string
        assert "spiffe://default/zone-egress" in certificate_uris(cert)
        assert "ext" in names(cache, "default.web", CLUSTER)  # direct: no routing through the egress yet
        assert "ext" not in names(cache, "default.web", ENDPOINT)

        current = await store.get("Mesh", "default")
        await store.update(current.with_spec(mesh(zone_egress=True).spec))
        await await_until(lambda: eds(cache, "default.web", "backend") == [("10.0.0.9", 2, "zone-2")], timeout=5)
        await await_until(lambda: "ext" in names(cache, "default.web", ENDPOINT), timeout=5)
        assert eds(cache, "default.web", "ext") == [("10.0.0.9", 0, "zone-1")]

        # The egress goes away: sidecars lose the route out rather than bypass it.
        await store.delete("ZoneEgress", "egress-1", None)
        await await_until(lambda: eds(cache, "default.web", "backend") == [], timeout=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
