"""Zone ingress Envoy config (pure): SNI pass-through from other zones to this zone's instances.

One listener on the ingress address:port with a TLS inspector and one filter chain per SNI
(``<service>{mesh=<mesh>}``), each a ``tcp_proxy`` to an EDS cluster ``<mesh>:<service>`` holding the
service's local endpoints. The ingress never terminates TLS: the sidecars at both ends do mTLS with
their own identities, so SPIFFE identities and permissions stay end to end. An SNI with no chain
(an unknown service) gets its connection closed.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2

from atoll.topology.ingress import IngressView
from atoll.xds.generate import envoy as e
from atoll.xds.generate import tls
from atoll.xds.generate.resources import EnvoyResources

BLACKHOLE = "ingress:unknown-sni"


def ingress_listener_name(view: IngressView) -> str:
    return f"ingress:{view.address}:{view.port}"


def sni_listener(
    name: str,
    address: str,
    port: int,
    direction: int,
    chains: list[listener_components_pb2.FilterChain],
    unknown_stat_prefix: str,
    blackhole: str,
) -> listener_pb2.Listener:
    """A listener routing TLS connections by SNI over ``chains`` (after a TLS inspector); unknown SNIs
    (and every connection while there are no chains yet) go to the ``blackhole`` cluster, so they are
    closed, and the listener exists from the start so the proxy reports ready. Ingress and egress."""
    fallback = listener_components_pb2.FilterChain(
        name="unknown-sni", filters=[e.tcp_proxy_filter(unknown_stat_prefix, blackhole)]
    )
    listener = e.listener(
        name,
        address,
        port,
        direction=direction,
        filter_chains=chains or [fallback],
        listener_filters=[tls.tls_inspector()],
    )
    if chains:
        listener.default_filter_chain.CopyFrom(fallback)
    return listener


def ingress_resources(view: IngressView) -> EnvoyResources:
    chains = []
    clusters = []
    clas = []
    for route in view.routes:
        stat_prefix = e.stat_name("ingress", f"{route.mesh}_{route.service}")
        chains.append(e.sni_filter_chain(route.sni, [e.tcp_proxy_filter(stat_prefix, route.cluster)]))
        clusters.append(e.eds_cluster(route.cluster))
        clas.append(e.cluster_load_assignment(route.cluster, route.endpoints))
    listener = sni_listener(
        ingress_listener_name(view), view.address, view.port, base_pb2.INBOUND, chains, "ingress_unknown_sni", BLACKHOLE
    )
    return EnvoyResources.of(
        listeners=[listener], clusters=[*clusters, e.blackhole_cluster(BLACKHOLE)], cluster_load_assignments=clas
    )
