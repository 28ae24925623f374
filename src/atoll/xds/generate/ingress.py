"""Zone ingress Envoy config (pure): SNI pass-through from other zones to this zone's instances.

One listener on the ingress address:port with a TLS inspector and one filter chain per SNI
(``<service>{mesh=<mesh>}``), each a ``tcp_proxy`` to an EDS cluster ``<mesh>:<service>`` holding the
service's local endpoints. The ingress never terminates TLS: the sidecars at both ends do mTLS with
their own identities, so SPIFFE identities and permissions stay end to end. An SNI with no chain
(an unknown service) gets its connection closed.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from atoll.topology.ingress import IngressView
from atoll.xds.generate import envoy as e
from atoll.xds.generate.resources import EnvoyResources

BLACKHOLE = "ingress:unknown-sni"


def ingress_listener_name(view: IngressView) -> str:
    return f"ingress:{view.address}:{view.port}"


def ingress_resources(view: IngressView) -> EnvoyResources:
    chains = []
    clusters = []
    clas = []
    for route in view.routes:
        proxy = tcp_proxy_pb2.TcpProxy(
            stat_prefix=e.stat_name("ingress", f"{route.mesh}_{route.service}"), cluster=route.cluster
        )
        chains.append(
            listener_components_pb2.FilterChain(
                name=route.sni,
                filter_chain_match=listener_components_pb2.FilterChainMatch(
                    server_names=[route.sni], transport_protocol="tls"
                ),
                filters=[_tcp(proxy)],
            )
        )
        clusters.append(e.eds_cluster(route.cluster))
        clas.append(e.cluster_load_assignment(route.cluster, route.endpoints))
    inspector = listener_components_pb2.ListenerFilter(
        name="envoy.filters.listener.tls_inspector", typed_config=e.pack(tls_inspector_pb2.TlsInspector())
    )
    # Unknown SNIs (and an ingress with nothing to offer yet) go to a cluster with no endpoints: the
    # connection is closed, and the listener exists from the start so the proxy reports ready.
    blackhole = cluster_pb2.Cluster(
        name=BLACKHOLE,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=e.duration(1),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(cluster_name=BLACKHOLE),
    )
    fallback = tcp_proxy_pb2.TcpProxy(stat_prefix="ingress_unknown_sni", cluster=BLACKHOLE)
    listener = e.listener(
        ingress_listener_name(view),
        view.address,
        view.port,
        direction=base_pb2.INBOUND,
        filter_chains=chains or [listener_components_pb2.FilterChain(name="unknown-sni", filters=[_tcp(fallback)])],
        listener_filters=[inspector],
    )
    if chains:
        listener.default_filter_chain.CopyFrom(
            listener_components_pb2.FilterChain(name="unknown-sni", filters=[_tcp(fallback)])
        )
    return EnvoyResources.of(listeners=[listener], clusters=[*clusters, blackhole], cluster_load_assignments=clas)


def _tcp(proxy: tcp_proxy_pb2.TcpProxy) -> listener_components_pb2.Filter:
    return listener_components_pb2.Filter(name="envoy.filters.network.tcp_proxy", typed_config=e.pack(proxy))
