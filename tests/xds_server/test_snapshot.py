"""Snapshots: shared serialization, per-resource and per-type versions, consistency; the cache's watchers."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from atoll.xds.server import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    SECRET,
    InconsistentSnapshot,
    Snapshot,
    SnapshotCache,
    VersionedResource,
)
from atoll.xds.vocabulary import ads_secret_names

from .xds_resources import cla, cluster, listener, route


def full() -> Snapshot:
    return Snapshot.build(
        listeners=[listener("l1", 10001, "r1")],
        routes=[route("r1", "c1")],
        clusters=[cluster("c1")],
        endpoints=[cla("c1", 8080)],
    )


def test_versioned_resource_bytes_are_the_wire_encoding() -> None:
    c = cluster("c1")
    r = VersionedResource.of(c)
    assert (r.type_url, r.name) == (CLUSTER, "c1")
    a = any_pb2.Any.FromString(r.any_bytes)
    assert a.type_url == CLUSTER
    back = cluster_pb2.Cluster()
    assert a.Unpack(back) and back == c
    resp = discovery_pb2.DiscoveryResponse.FromString(r.sotw_field)
    assert list(resp.resources) == [a]
    delta = discovery_pb2.DeltaDiscoveryResponse.FromString(r.delta_field)
    assert [(x.name, x.version, x.resource) for x in delta.resources] == [("c1", r.version, a)]


def test_versions_follow_content() -> None:
    assert VersionedResource.of(cluster("c1")).version == VersionedResource.of(cluster("c1")).version
    assert VersionedResource.of(cluster("c1")).version != VersionedResource.of(cluster("c1", timeout_s=2)).version
    a, b = full(), full()
    for t in (LISTENER, ROUTE, CLUSTER, ENDPOINT, SECRET):
        assert a.version(t) == b.version(t)
    c = Snapshot.build(
        listeners=[listener("l1", 10001, "r1")],
        routes=[route("r1", "c1")],
        clusters=[cluster("c1")],
        endpoints=[cla("c1", 8081)],
    )
    assert c.version(ENDPOINT) != a.version(ENDPOINT)
    assert [c.version(t) == a.version(t) for t in (LISTENER, ROUTE, CLUSTER)] == [True, True, True]


def test_names_and_rejections() -> None:
    s = full()
    assert set(s.resources(ENDPOINT)) == {"c1"} and set(s.resources(LISTENER)) == {"l1"}
    assert list(s.resources(SECRET)) == []
    with pytest.raises(ValueError, match="duplicate"):
        Snapshot.build(clusters=[cluster("c1"), cluster("c1")])
    with pytest.raises(ValueError, match="not an xDS resource type"):
        VersionedResource.of(any_pb2.Any())
    with pytest.raises(ValueError, match="empty name"):
        VersionedResource.of(cluster(""))
    shared = VersionedResource.of(cluster("c9"))
    assert Snapshot.from_resources([shared]).resources(CLUSTER)["c9"] is shared


def test_consistency() -> None:
    assert full().consistent()
    bad = Snapshot.build(
        listeners=[listener("l1", 10001, "r-missing")],
        clusters=[cluster("c1"), cluster("c2", service_name="svc2")],
        endpoints=[cla("c1", 8080)],
    )
    problems = bad.problems()
    assert len(problems) == 2
    assert any("'svc2'" in p and "ClusterLoadAssignment" in p for p in problems)
    assert any("'r-missing'" in p and "RouteConfiguration" in p for p in problems)
    with pytest.raises(InconsistentSnapshot) as e:
        bad.ensure_consistent()
    assert e.value.problems == problems


def test_sds_secret_references() -> None:
    c = cluster("c1")
    ctx = tls_pb2.UpstreamTlsContext()
    sds = ctx.common_tls_context.tls_certificate_sds_secret_configs.add(name="identity")
    sds.sds_config.ads.SetInParent()
    ctx.common_tls_context.validation_context_sds_secret_config.name = "file-ca"  # not over ADS: ignored
    c.transport_socket.name = "envoy.transport_sockets.tls"
    c.transport_socket.typed_config.Pack(ctx)
    assert ads_secret_names(c) == ("identity",)
    missing = Snapshot.build(clusters=[c], endpoints=[cla("c1", 1)])
    assert any("'identity'" in p for p in missing.problems())
    secret = secret_pb2.Secret(name="identity", tls_certificate=common_pb2.TlsCertificate())
    assert Snapshot.build(clusters=[c], endpoints=[cla("c1", 1)], secrets=[secret]).consistent()


def test_cache_wakes_watchers_of_that_node_only() -> None:
    cache = SnapshotCache()
    seen: list[tuple[str, Snapshot]] = []
    cancel = cache.watch("default.web-1", lambda s: seen.append(("w1", s)))
    cache.watch("default.web-2", lambda s: seen.append(("w2", s)))
    s1 = full()
    cache.set_snapshot("default.web-1", s1)
    assert seen == [("w1", s1)] and cache.get("default.web-1") is s1 and cache.get("default.web-2") is None
    cache.set_snapshot("default.web-1", s1)  # the same object: nothing to wake
    assert len(seen) == 1
    cancel()
    assert cache.watcher_count("default.web-1") == 0
    cache.set_snapshot("default.web-1", full())
    assert len(seen) == 1


def test_cache_refuses_inconsistent_snapshot_and_keeps_the_old() -> None:
    cache = SnapshotCache()
    s1 = full()
    cache.set_snapshot("n", s1)
    with pytest.raises(InconsistentSnapshot):
        cache.set_snapshot("n", Snapshot.build(clusters=[cluster("c1")]))
    assert cache.get("n") is s1
    SnapshotCache(check_consistency=False).set_snapshot("n", Snapshot.build(clusters=[cluster("c1")]))
