"""The xDS vocabulary: type URLs, the one push order, and the references the consistency checks walk."""

from __future__ import annotations

from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import any_pb2

from atoll.xds import generate, server, vocabulary
from atoll.xds.vocabulary import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    PUSH_ORDER,
    ROUTE,
    SECRET,
    SERVED_REFERENCES,
    clusters_named_by,
    http_connection_managers,
    missing_references,
    rds_names_of_listener,
    served_references,
)

from .xds_resources import cla, cluster, listener, route


def test_type_urls_and_the_one_push_order() -> None:
    assert LISTENER == "type.googleapis.com/envoy.config.listener.v3.Listener"
    assert ROUTE == "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
    assert CLUSTER == "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    assert ENDPOINT == "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    assert SECRET == "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    # What Envoy receives: secrets, clusters before their endpoints, listeners before their routes.
    assert PUSH_ORDER == (SECRET, CLUSTER, ENDPOINT, LISTENER, ROUTE)
    assert server.PUSH_ORDER is PUSH_ORDER and generate.TYPE_ORDER is PUSH_ORDER
    assert generate.CLUSTER_TYPE is vocabulary.CLUSTER and server.CLUSTER is vocabulary.CLUSTER


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def test_one_hcm_walker_sees_filter_chains_the_default_chain_and_the_api_listener() -> None:
    lis = listener("l", 1, "in-chain")
    lis.default_filter_chain.filters.append(
        listener_components_pb2.Filter(
            name="hcm", typed_config=_pack(hcm_pb2.HttpConnectionManager(rds=hcm_pb2.Rds(route_config_name="default")))
        )
    )
    lis.api_listener.api_listener.CopyFrom(_pack(hcm_pb2.HttpConnectionManager(route_config=route("inline", "c9"))))
    tcp = tcp_proxy_pb2.TcpProxy(stat_prefix="t", cluster="c-tcp")
    lis.filter_chains[0].filters.append(listener_components_pb2.Filter(name="tcp", typed_config=_pack(tcp)))
    assert len(list(http_connection_managers(lis))) == 3
    assert rds_names_of_listener(lis) == ("in-chain", "default")
    assert sorted(clusters_named_by(lis)) == ["c-tcp", "c9"]
    assert clusters_named_by(route("r", "c1")) == ("c1",)
    assert clusters_named_by(cluster("c1")) == ()


def test_missing_references_follow_the_rules_in_order() -> None:
    by_type = {
        CLUSTER: {"c1": cluster("c1"), "c2": cluster("c2", service_name="svc2")},
        ENDPOINT: {"c1": cla("c1", 1)},
        LISTENER: {"l1": listener("l1", 1, "r1"), "l2": listener("l2", 2, "r2")},
        ROUTE: {"r1": route("r1", "c1")},
    }
    found = list(missing_references(by_type, served_references, SERVED_REFERENCES))
    assert [(d.owner_type, d.owner, d.missing_type, d.missing) for d in found] == [
        (CLUSTER, "c2", ENDPOINT, "svc2"),
        (LISTENER, "l2", ROUTE, "r2"),
    ]
