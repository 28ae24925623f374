"""Unit tests of the generators' building blocks, naming rules and bootstraps."""

from __future__ import annotations

from dataclasses import replace

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from atoll.topology import proxy_view, with_endpoints
from atoll.xds.generate import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    TYPE_ORDER,
    EnvoyResources,
    envoy_bootstrap,
    grpc_proxyless_resources,
    grpc_xds_bootstrap,
    sidecar_endpoint_update,
    sidecar_resources,
)
from atoll.xds.generate import envoy as e
from tests.generate.certs import fixed_identity
from tests.generate.golden import load_mesh_view
from tests.generate.test_topology import INGRESSES, _dp, _mesh


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(5, (5, 0)), (0.25, (0, 250_000_000)), (1.9999999999, (2, 0)), (0.999999999, (0, 999_999_999)), (0, (0, 0))],
)
def test_duration_keeps_nanos_below_one_second(seconds: float, expected: tuple[int, int]) -> None:
    d = e.duration(seconds)
    assert (d.seconds, d.nanos) == expected
    assert 0 <= d.nanos < 1_000_000_000


def test_duration_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        e.duration(-1)


def test_stat_names_replace_unsafe_characters() -> None:
    assert e.stat_name("outbound", "backend") == "outbound_backend"
    assert e.stat_name("inbound", "web.ns:80/x") == "inbound_web_ns_80_x"


def test_sidecar_names_and_filters() -> None:
    res = sidecar_resources(proxy_view(load_mesh_view(), "echo-1"))
    assert [lis.name for lis in res.listeners] == [
        "inbound:10.0.0.6:50051",
        "inbound:10.0.0.6:50052",
        "inbound:10.0.0.6:7000",
    ]
    assert [c.name for c in res.clusters] == ["localhost:50051", "localhost:50052", "localhost:7000"]
    by_name = {c.name: c for c in res.clusters}
    # grpc and http2 local clusters speak HTTP/2; the http one does not.
    assert e.HTTP_PROTOCOL_OPTIONS_KEY in by_name["localhost:50051"].typed_extension_protocol_options
    assert e.HTTP_PROTOCOL_OPTIONS_KEY in by_name["localhost:50052"].typed_extension_protocol_options
    assert not by_name["localhost:7000"].typed_extension_protocol_options
    manager = hcm_pb2.HttpConnectionManager()
    assert res.listeners[0].filter_chains[0].filters[0].typed_config.Unpack(manager)
    assert manager.stat_prefix == "inbound_echo"
    assert manager.route_config.virtual_hosts[0].routes[0].route.cluster == "localhost:50051"
    assert res.cluster_load_assignments == () and res.route_configurations == () and res.secrets == ()


def test_outbound_clusters_are_eds_over_ads_with_a_load_assignment_each() -> None:
    res = sidecar_resources(proxy_view(load_mesh_view(), "web-1"))
    eds = [c for c in res.clusters if c.type == cluster_pb2.Cluster.EDS]
    assert [c.name for c in eds] == ["backend", "db", "echo", "ghost", "mixed", "stream"]
    assert all(c.eds_cluster_config.eds_config.HasField("ads") for c in eds)
    assert [c.cluster_name for c in res.cluster_load_assignments] == [c.name for c in eds]
    assert res.check_consistent() == []
    assert list(res.by_type()) == list(TYPE_ORDER)
    assert set(res.by_type()[LISTENER_TYPE]) == {lis.name for lis in res.listeners}
    assert set(res.by_type()[CLUSTER_TYPE]) == {c.name for c in res.clusters}
    assert set(res.by_type()[ENDPOINT_TYPE]) == {c.name for c in eds}


def test_two_outbounds_of_one_service_share_the_cluster() -> None:
    doc = _dp("a", "10.0.0.1", "a", 80) + "  outbound:\n    - port: 10001\n      tags: {kuma.io/service: b}\n"
    doc += "    - port: 10002\n      tags: {kuma.io/service: b}\n"
    res = sidecar_resources(proxy_view(_mesh(doc, _dp("b", "10.0.0.2", "b", 80)), "a"))
    assert [lis.name for lis in res.listeners] == [
        "inbound:10.0.0.1:80",
        "outbound:127.0.0.1:10001",
        "outbound:127.0.0.1:10002",
    ]
    assert [c.name for c in res.clusters] == ["b", "localhost:80"]
    assert res.check_consistent() == []


def test_remote_ingress_endpoints_get_their_zone_and_weight() -> None:
    doc = _dp("a", "10.0.0.1", "a", 80) + "  outbound:\n    - port: 10001\n      tags: {kuma.io/service: svc}\n"
    mv = _mesh(doc, _dp("s", "10.0.0.2", "svc", 80, protocol="http"), INGRESSES, mtls=True)
    (cla,) = sidecar_resources(proxy_view(mv, "a"), fixed_identity()).cluster_load_assignments
    assert [
        (
            g.locality.zone,
            [(le.endpoint.address.socket_address.address, le.load_balancing_weight.value) for le in g.lb_endpoints],
        )
        for g in cla.endpoints
    ] == [
        ("zone-1", [("10.0.0.2", 0)]),
        ("zone-2", [("203.0.113.2", 3)]),
    ]
    assert not cla.endpoints[0].lb_endpoints[0].HasField("load_balancing_weight")


def test_proxyless_resources_are_named_for_the_xds_target() -> None:
    res = grpc_proxyless_resources(proxy_view(load_mesh_view(), "grpc-client"))
    assert [lis.name for lis in res.listeners] == ["echo:50051"]
    assert [r.name for r in res.route_configurations] == ["echo:50051"]
    assert [c.name for c in res.clusters] == ["echo"]
    assert [c.cluster_name for c in res.cluster_load_assignments] == ["echo"]
    manager = hcm_pb2.HttpConnectionManager()
    assert res.listeners[0].api_listener.api_listener.Unpack(manager)
    assert manager.rds.route_config_name == "echo:50051"
    assert manager.rds.config_source.HasField("ads")
    assert res.route_configurations[0].virtual_hosts[0].domains == ["*"]
    assert res.clusters[0].lb_policy == cluster_pb2.Cluster.ROUND_ROBIN


def test_envoy_resources_reject_two_different_resources_with_one_name() -> None:
    a = endpoint_pb2.ClusterLoadAssignment(cluster_name="x")
    assert EnvoyResources.of(cluster_load_assignments=[a, a]).cluster_load_assignments == (a,)
    b = e.cluster_load_assignment("x", [])
    b.policy.overprovisioning_factor.value = 200
    with pytest.raises(ValueError, match='two different ClusterLoadAssignment resources named "x"'):
        EnvoyResources.of(cluster_load_assignments=[a, b])


def test_check_consistent_reports_missing_references() -> None:
    res = EnvoyResources.of(
        clusters=[e.eds_cluster("lonely")],
        cluster_load_assignments=[e.cluster_load_assignment("orphan", [])],
        listeners=[
            e.api_listener("l", e.hcm("s", rds_name="no-such-route")),
            e.listener(
                "t",
                "127.0.0.1",
                1,
                direction=0,
                filters=[e.network_filter("tcp", stat_prefix="s", service="x", cluster="nowhere", route_name="t")],
            ),
        ],
    )
    assert res.check_consistent() == [
        'cluster "lonely": no ClusterLoadAssignment "lonely"',
        'ClusterLoadAssignment "orphan": no cluster uses it',
        'listener "l": no RouteConfiguration "no-such-route"',
        'cluster "nowhere" is referenced but not defined',
    ]


def test_envoy_bootstrap_fields() -> None:
    boot = envoy_bootstrap(
        node_id="m.dp",
        node_cluster="svc",
        xds_host="10.0.0.9",
        xds_port=5678,
        ads="delta",
        admin_port=9000,
        token="secret",
    )
    ads = boot["dynamic_resources"]["ads_config"]
    assert ads["api_type"] == "DELTA_GRPC" and ads["set_node_on_first_message_only"] is True
    assert ads["grpc_services"][0]["initial_metadata"] == [{"key": "x-atoll-token", "value": "secret"}]
    assert boot["dynamic_resources"]["cds_config"] == {"ads": {}, "resource_api_version": "V3"}
    assert boot["dynamic_resources"]["lds_config"] == {"ads": {}, "resource_api_version": "V3"}
    assert boot["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9000}
    (cluster,) = boot["static_resources"]["clusters"]
    assert cluster["type"] == "STATIC" and "transport_socket" not in cluster
    assert boot["node"] == {"id": "m.dp", "cluster": "svc"}

    sotw = envoy_bootstrap(
        node_id="m.dp", node_cluster="svc", xds_host="cp.local", xds_port=5678, ads="sotw", admin_port=9000
    )
    assert sotw["dynamic_resources"]["ads_config"]["api_type"] == "GRPC"
    assert "initial_metadata" not in sotw["dynamic_resources"]["ads_config"]["grpc_services"][0]
    assert sotw["static_resources"]["clusters"][0]["type"] == "STRICT_DNS"

    with pytest.raises(ValueError, match="ads must be"):
        envoy_bootstrap(
            node_id="m.dp",
            node_cluster="svc",
            xds_host="h",
            xds_port=1,
            ads="nope",  # type: ignore[arg-type]
            admin_port=1,
        )


def test_grpc_bootstrap() -> None:
    assert grpc_xds_bootstrap(node_id="m.c", server_uri="127.0.0.1:5678") == {
        "xds_servers": [
            {"server_uri": "127.0.0.1:5678", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}
        ],
        "node": {"id": "m.c"},
    }


def _by_name(res: EnvoyResources) -> dict[str, dict[str, bytes]]:
    return {t: {n: m.SerializeToString(deterministic=True) for n, m in d.items()} for t, d in res.by_type().items()}


def test_an_endpoint_update_is_the_full_generation_with_assignments_swapped() -> None:
    doc = _dp("a", "10.0.0.1", "a", 80) + "  outbound:\n    - port: 10001\n      tags: {kuma.io/service: svc}\n"
    doc += "    - port: 10002\n      tags: {kuma.io/service: other}\n"
    svc, other = _dp("s", "10.0.0.2", "svc", 80), _dp("o", "10.0.0.3", "other", 80)
    before = _mesh(doc, svc, other)
    after = _mesh(doc, svc, _dp("s2", "10.0.0.4", "svc", 80), other)
    old = proxy_view(before, "a")
    new = with_endpoints(old, {"svc": after.index.endpoints["svc"]})
    assert new == proxy_view(after, "a")
    clas = sidecar_endpoint_update(old, new)
    assert clas is not None and [c.cluster_name for c in clas] == ["svc"]  # "other" did not change
    expected = _by_name(sidecar_resources(old))
    expected[ENDPOINT_TYPE]["svc"] = clas[0].SerializeToString(deterministic=True)
    assert expected == _by_name(sidecar_resources(new))


def test_an_endpoint_update_refuses_what_changes_more_than_assignments() -> None:
    doc = _dp("a", "10.0.0.1", "a", 80) + "  outbound:\n    - port: 10001\n      tags: {kuma.io/service: svc}\n"
    local = _mesh(doc, _dp("s", "10.0.0.2", "svc", 80, protocol="http"), mtls=True)
    remote = _mesh(doc, _dp("s", "10.0.0.2", "svc", 80, protocol="http"), INGRESSES, mtls=True)
    old = proxy_view(local, "a")
    # the first zone-ingress endpoint adds outlier detection to the cluster
    assert sidecar_endpoint_update(old, with_endpoints(old, {"svc": remote.index.endpoints["svc"]})) is None
    # anything but endpoints
    assert sidecar_endpoint_update(old, replace(old, locality_aware=True)) is None
    ob = replace(old.outbounds[0], port=10009)
    assert sidecar_endpoint_update(old, replace(old, outbounds=(ob,))) is None
    assert sidecar_endpoint_update(old, old) == []
