"""Zone egress Envoy config (pure): SNI pass-through to other zones, mTLS termination for external services.

One listener ``egress:<address>:<port>`` with a TLS inspector and one filter chain per SNI
(``<service>{mesh=<mesh>}``, see ``atoll.topology.egress``):

- pass-through: ``tcp_proxy`` to the EDS cluster ``<mesh>:<service>`` of the other zones' ingresses
  (locality = zone, weight = instances), still encrypted end to end, with the default cross-zone
  outlier detection (``policies.INGRESS_OUTLIER_DETECTION``) so a dead zone is ejected in seconds;
- external: the chain terminates the mesh mTLS (``tls.downstream_tls_context``: the egress's
  ``spiffe://<mesh>/zone-egress`` certificate over SDS, a client certificate of the mesh required),
  then MeshTrafficPermission as RBAC by the caller's certificate (HTTP RBAC in an HCM for HTTP
  protocols, 403 when denied; network RBAC before tcp_proxy otherwise), then the cluster
  ``external:<mesh>:<service>`` to the external address (``atoll.xds.generate.external``).

Unknown SNIs go to a cluster with no endpoints (closed), as at the ingress. Secrets: the identity and
CA of each mesh with an external route (``EgressView.meshes``), from ``identities``.
"""

from __future__ import annotations

from collections.abc import Mapping

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2

from atoll.topology import HTTP_PROTOCOLS, Identity
from atoll.topology.egress import EgressView, ExternalRoute
from atoll.xds.generate import envoy as e
from atoll.xds.generate import policies as p
from atoll.xds.generate import rbac, tls
from atoll.xds.generate.external import external_cluster
from atoll.xds.generate.ingress import sni_listener
from atoll.xds.generate.resources import EnvoyResources

__all__ = ["BLACKHOLE", "egress_listener_name", "egress_resources"]

BLACKHOLE = "egress:unknown-sni"


def egress_listener_name(view: EgressView) -> str:
    return f"egress:{view.address}:{view.port}"


def _external_filters(route: ExternalRoute) -> list[listener_components_pb2.Filter]:
    ext = route.external
    stat_prefix = e.stat_name("egress", f"{route.mesh}_{route.service}")
    if ext.protocol in HTTP_PROTOCOLS:
        return [
            e.network_filter(
                ext.protocol,
                stat_prefix=stat_prefix,
                service=route.service,
                cluster=route.cluster,
                route_name=route.cluster,
                http_filters=[rbac.http_rbac_filter(route.mesh, route.permissions, route.identity_rules)],
            )
        ]
    return [
        rbac.network_rbac_filter(route.mesh, route.permissions, stat_prefix, route.identity_rules),
        e.tcp_proxy_filter(stat_prefix, route.cluster),
    ]


def egress_resources(view: EgressView, identities: Mapping[str, Identity]) -> EnvoyResources:
    """The egress's listener, clusters, CLAs and (per mesh it terminates for) secrets. External routes
    of a mesh missing from ``identities`` are left out (its CA is not known yet)."""
    chains: list[listener_components_pb2.FilterChain] = []
    clusters: list[cluster_pb2.Cluster] = []
    clas: list[endpoint_pb2.ClusterLoadAssignment] = []
    seen: set[str] = set()
    for pt in view.passthrough:
        if pt.sni in seen:
            continue
        seen.add(pt.sni)
        stat_prefix = e.stat_name("egress", f"{pt.mesh}_{pt.service}")
        chains.append(e.sni_filter_chain(pt.sni, [e.tcp_proxy_filter(stat_prefix, pt.cluster)]))
        cluster = e.eds_cluster(pt.cluster)
        # As on a sidecar with zone-ingress endpoints: a remote ingress that stops answering is ejected
        # within seconds, so traffic fails over to the zones still up.
        detection = p.outlier_detection(p.INGRESS_OUTLIER_DETECTION)
        if detection is not None:
            cluster.outlier_detection.CopyFrom(detection)
        clusters.append(cluster)
        clas.append(e.cluster_load_assignment(pt.cluster, pt.endpoints))
    meshes: set[str] = set()
    for ext in view.externals:
        if ext.sni in seen or ext.mesh not in identities:
            continue
        seen.add(ext.sni)
        meshes.add(ext.mesh)
        context = tls.downstream_tls_context(ext.mesh, ext.external.protocol)
        chains.append(e.sni_filter_chain(ext.sni, _external_filters(ext), tls.transport_socket(context)))
        clusters.append(external_cluster(ext.cluster, ext.external))
    secrets = [s for mesh in sorted(meshes) for s in tls.mesh_secrets(mesh, identities[mesh])]
    listener = sni_listener(
        egress_listener_name(view), view.address, view.port, base_pb2.OUTBOUND, chains, "egress_unknown_sni", BLACKHOLE
    )
    return EnvoyResources.of(
        listeners=[listener],
        clusters=[*clusters, e.blackhole_cluster(BLACKHOLE)],
        cluster_load_assignments=clas,
        secrets=secrets,
    )
