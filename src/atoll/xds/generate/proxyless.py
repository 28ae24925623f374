"""ProxyView -> the xDS resources a proxyless gRPC client reads (pure).

A gRPC channel to ``xds:///<service>:<port>`` asks, by name and over SotW ADS only, for:

- LDS ``Listener{name: "<service>:<port>", api_listener: HCM(rds "<service>:<port>", router)}``,
- RDS ``RouteConfiguration "<service>:<port>"``: one virtual host, domains ``*``, prefix "" -> ``<service>``,
- CDS ``Cluster "<service>"``: EDS over ADS, ROUND_ROBIN,
- EDS ``ClusterLoadAssignment "<service>"``: the endpoints, by zone.

One set per outbound of the view (the outbound's port is the port in the target). Unlike the sidecar,
routes go over RDS (the layout measured with grpcio 1.74-1.85). These resources must be served only
to proxyless clients: an Envoy subscribing to every listener would receive the api_listeners.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2

from atoll.topology import ProxyView
from atoll.xds.generate import envoy as e
from atoll.xds.generate.resources import EnvoyResources

__all__ = ["grpc_listener_name", "grpc_proxyless_resources"]


def grpc_listener_name(service: str, port: int) -> str:
    """The LDS name a gRPC client asks for when dialling ``xds:///<service>:<port>``."""
    return f"{service}:{port}"


def _weighted_localities(cla: endpoint_pb2.ClusterLoadAssignment) -> endpoint_pb2.ClusterLoadAssignment:
    """gRPC drops localities without a ``load_balancing_weight``: give each the sum of its endpoints'
    weights (1 each by default), so zones keep their proportion of instances."""
    for loc in cla.endpoints:
        if not loc.HasField("load_balancing_weight"):
            weight = sum(lb.load_balancing_weight.value or 1 for lb in loc.lb_endpoints)
            loc.load_balancing_weight.value = max(1, weight)
    return cla


def grpc_proxyless_resources(view: ProxyView) -> EnvoyResources:
    """LDS/RDS/CDS/EDS for every outbound of ``view``, as a proxyless gRPC client asks for them."""
    listeners: list[listener_pb2.Listener] = []
    routes: list[route_pb2.RouteConfiguration] = []
    clusters: dict[str, cluster_pb2.Cluster] = {}
    clas: list[endpoint_pb2.ClusterLoadAssignment] = []
    for ob in view.outbounds:
        name = grpc_listener_name(ob.service, ob.port)
        listeners.append(e.api_listener(name, e.hcm(e.stat_name("outbound", ob.service), rds_name=name)))
        routes.append(
            route_pb2.RouteConfiguration(
                name=name,
                virtual_hosts=[
                    route_components_pb2.VirtualHost(
                        name=ob.service,
                        domains=["*"],
                        routes=[
                            route_components_pb2.Route(
                                match=route_components_pb2.RouteMatch(prefix=""),
                                route=route_components_pb2.RouteAction(cluster=ob.service),
                            )
                        ],
                    )
                ],
            )
        )
        if ob.service not in clusters:
            cluster = e.eds_cluster(ob.service)
            cluster.ClearField("connect_timeout")
            clusters[ob.service] = cluster
            clas.append(_weighted_localities(e.cluster_load_assignment(ob.service, ob.endpoints)))
    return EnvoyResources.of(
        listeners=listeners,
        route_configurations=routes,
        clusters=list(clusters.values()),
        cluster_load_assignments=clas,
    )
