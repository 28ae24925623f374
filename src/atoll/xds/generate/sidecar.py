"""ProxyView -> the Envoy resources of a sidecar (pure).

Per inbound: listener ``inbound:<addr>:<port>`` on the inbound address and port, forwarding to the
STATIC cluster ``localhost:<servicePort>`` (the application at serviceAddress:servicePort).
Per outbound: listener ``outbound:<addr>:<port>``, forwarding to the EDS cluster named after the
service (its ClusterLoadAssignment, of the same name, comes over ADS: endpoints grouped by zone,
each with its tags as ``envoy.lb`` metadata and its weight when it has one).

HTTP protocols (``http``, ``http2``, ``grpc``) get an HTTP connection manager with its route
configuration **inline** (named like the listener, one virtual host named after the service), so a
sidecar needs no RDS; ``tcp`` (and ``kafka``) get tcp_proxy. ``http2``/``grpc`` clusters speak
HTTP/2 upstream. Stat prefixes: ``inbound_<service>``, ``outbound_<service>``. Output is sorted by
name and has no time in it: equal views give equal resources.

mTLS (``view.mtls``), remote zone-ingress endpoints and policies are not applied yet; ``secrets``
stays empty.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2

from atoll.topology import ProxyView
from atoll.xds.generate import envoy as e
from atoll.xds.generate.resources import EnvoyResources

__all__ = ["sidecar_resources"]


def sidecar_resources(view: ProxyView) -> EnvoyResources:
    """The listeners, clusters and ClusterLoadAssignments of the sidecar described by ``view``."""
    listeners: list[listener_pb2.Listener] = []
    clusters: list[cluster_pb2.Cluster] = []
    clas: list[endpoint_pb2.ClusterLoadAssignment] = []

    local: dict[str, cluster_pb2.Cluster] = {}
    for ib in view.inbounds:
        name = e.inbound_listener_name(ib.address, ib.port)
        cluster = e.local_cluster_name(ib.service_port)
        listeners.append(
            e.listener(
                name,
                ib.address,
                ib.port,
                direction=base_pb2.INBOUND,
                filters=[
                    e.network_filter(
                        ib.protocol,
                        stat_prefix=e.stat_name("inbound", ib.service),
                        service=ib.service,
                        cluster=cluster,
                        route_name=name,
                    )
                ],
            )
        )
        # Two inbounds on one local port share the cluster; the first (in address:port order) wins.
        local.setdefault(cluster, e.static_cluster(cluster, ib.service_address, ib.service_port, protocol=ib.protocol))
    clusters.extend(local.values())

    remote: dict[str, cluster_pb2.Cluster] = {}
    for ob in view.outbounds:
        name = e.outbound_listener_name(ob.address, ob.port)
        listeners.append(
            e.listener(
                name,
                ob.address,
                ob.port,
                direction=base_pb2.OUTBOUND,
                filters=[
                    e.network_filter(
                        ob.protocol,
                        stat_prefix=e.stat_name("outbound", ob.service),
                        service=ob.service,
                        cluster=ob.service,
                        route_name=name,
                    )
                ],
            )
        )
        if ob.service not in remote:
            remote[ob.service] = e.eds_cluster(ob.service, protocol=ob.protocol)
            clas.append(e.shared_cluster_load_assignment(ob.service, ob.endpoints))
    clusters.extend(remote.values())

    return EnvoyResources.of(listeners=listeners, clusters=clusters, cluster_load_assignments=clas)
