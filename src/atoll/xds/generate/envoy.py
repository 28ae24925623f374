"""Small builders of Envoy v3 messages shared by the generators, and the names Atoll gives them.

``shared_cluster_load_assignment`` is the one memoized builder (bounded memos keyed by the identity,
then the value, of the endpoint tuple): pure, but its messages are shared between proxies and must
not be mutated.

Every typed config is packed with ``pack`` into an ``Any`` of its own message type (pitfall 5:
the wrong type under a typed key is NACKed); every module whose type is packed is imported here
(pitfall 6), so importing this module is enough to render any generated resource. Durations are
built by ``duration`` from a number of seconds, with nanos kept below 1e9 (pitfall 4).

Names:
    inbound listener   ``inbound:<address>:<port>``     local cluster   ``localhost:<servicePort>``
    outbound listener  ``outbound:<address>:<port>``    service cluster ``<service>`` (EDS, CLA of the same name)
    stat prefixes      ``inbound_<service>``, ``outbound_<service>`` (dots and colons become ``_``)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_components_pb2, listener_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2 as http_local_rate_limit_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.local_ratelimit.v3 import local_rate_limit_pb2 as network_local_rate_limit_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2, struct_pb2, wrappers_pb2
from google.protobuf.message import Message

from atoll.topology import HTTP_PROTOCOLS, Endpoint

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "HCM_FILTER",
    "HTTP_PROTOCOL_OPTIONS_KEY",
    "ROUTER_FILTER",
    "TCP_PROXY_FILTER",
    "ads_config_source",
    "api_listener",
    "blackhole_cluster",
    "cluster_load_assignment",
    "duration",
    "edit_filters",
    "eds_cluster",
    "hcm",
    "inbound_listener_name",
    "listener",
    "local_cluster_name",
    "outbound_listener_name",
    "pack",
    "percent",
    "route_configuration",
    "routes",
    "shared_cluster_load_assignment",
    "sni_filter_chain",
    "socket_address",
    "stat_name",
    "static_cluster",
    "tcp_proxy_filter",
    "tcp_proxy_pb2",
    "u32",
]

# Referenced so the imports above (needed to render packed Anys: TLS/SDS, RBAC, ...) stay.
_RENDERABLE = (
    common_pb2,
    secret_pb2,
    tls_pb2,
    api_listener_pb2,
    rbac_pb2,
    http_rbac_pb2,
    network_rbac_pb2,
    tls_inspector_pb2,
    previous_hosts_pb2,
    accesslog_pb2,
    file_pb2,
    fault_pb2,
    http_local_rate_limit_pb2,
    network_local_rate_limit_pb2,
)

HCM_FILTER = "envoy.filters.network.http_connection_manager"
TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
ROUTER_FILTER = "envoy.filters.http.router"
HTTP_PROTOCOL_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
CONNECT_TIMEOUT_SECONDS = 5.0

_STAT_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def inbound_listener_name(address: str, port: int) -> str:
    return f"inbound:{address}:{port}"


def outbound_listener_name(address: str, port: int) -> str:
    return f"outbound:{address}:{port}"


def local_cluster_name(service_port: int) -> str:
    return f"localhost:{service_port}"


def stat_name(prefix: str, service: str) -> str:
    """``<prefix>_<service>`` with characters Envoy's stats treat specially replaced by ``_``."""
    return f"{prefix}_{_STAT_UNSAFE.sub('_', service)}"


def pack(message: Message) -> any_pb2.Any:
    """``message`` in an ``Any``, serialized deterministically (map entries sorted: RBAC policies,
    metadata), so equal configs give equal bytes and the xDS cache sees no false changes."""
    a = any_pb2.Any()
    a.Pack(message, deterministic=True)
    return a


def duration(seconds: float) -> duration_pb2.Duration:
    """A Duration of ``seconds`` (>= 0) with ``0 <= nanos < 1e9``."""
    if seconds < 0:
        raise ValueError(f"negative duration {seconds}")
    total_nanos = round(seconds * 1_000_000_000)
    whole, nanos = divmod(total_nanos, 1_000_000_000)
    return duration_pb2.Duration(seconds=whole, nanos=nanos)


def u32(value: int) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value)


def percent(value: float) -> percent_pb2.Percent:
    return percent_pb2.Percent(value=value)


def socket_address(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port))


def ads_config_source() -> config_source_pb2.ConfigSource:
    """``{ads: {}, resource_api_version: V3}``: fetch the resource over the proxy's ADS stream."""
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.ApiVersion.V3,
    )


def _http2_options(protocol: str) -> dict[str, any_pb2.Any]:
    if protocol not in ("http2", "grpc"):
        return {}
    opts = http_protocol_options_pb2.HttpProtocolOptions(
        explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
            http2_protocol_options=protocol_pb2.Http2ProtocolOptions()
        )
    )
    return {HTTP_PROTOCOL_OPTIONS_KEY: pack(opts)}


def lb_endpoint(ep: Endpoint) -> endpoint_components_pb2.LbEndpoint:
    """One endpoint, its tags in ``envoy.lb`` metadata (for subset load balancing by policies)."""
    md = struct_pb2.Struct()
    md.update(dict(ep.tags))
    out = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=socket_address(ep.address, ep.port)),
        metadata=base_pb2.Metadata(filter_metadata={"envoy.lb": md}),
    )
    if ep.weight is not None:
        out.load_balancing_weight.CopyFrom(wrappers_pb2.UInt32Value(value=max(1, ep.weight)))
    return out


def cluster_load_assignment(
    cluster_name: str,
    endpoints: Iterable[Endpoint],
    priorities: tuple[tuple[str, int], ...] | None = None,
    overprovisioning_factor: int | None = None,
) -> endpoint_pb2.ClusterLoadAssignment:
    """Endpoints grouped by locality (zone), zones and endpoints in sorted order.

    Without ``priorities`` every zone is priority 0 (traffic split by endpoint weight). With them
    (zone -> priority), zones are ordered by priority, zones not listed are left out, and the
    priorities in use are renumbered 0, 1, 2, ... (Envoy needs them without gaps)."""
    by_zone: dict[str, list[Endpoint]] = {}
    for ep in endpoints:
        by_zone.setdefault(ep.zone, []).append(ep)
    prio = dict(priorities) if priorities is not None else None
    zones = sorted(by_zone) if prio is None else sorted((z for z in by_zone if z in prio), key=lambda z: (prio[z], z))
    dense = {p: i for i, p in enumerate(sorted({prio[z] for z in zones}))} if prio is not None else {}
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name)
    for zone in zones:
        group = endpoint_components_pb2.LocalityLbEndpoints(
            lb_endpoints=[
                lb_endpoint(ep) for ep in sorted(by_zone[zone], key=lambda e: (e.address, e.port, e.dataplane or ""))
            ]
        )
        if zone:
            group.locality.CopyFrom(base_pb2.Locality(zone=zone))
        if prio is not None:
            group.priority = dense[prio[zone]]
        cla.endpoints.append(group)
    if overprovisioning_factor is not None:
        cla.policy.overprovisioning_factor.CopyFrom(wrappers_pb2.UInt32Value(value=overprovisioning_factor))
    return cla


def shared_cluster_load_assignment(
    cluster_name: str,
    endpoints: tuple[Endpoint, ...],
    priorities: tuple[tuple[str, int], ...] | None = None,
    overprovisioning_factor: int | None = None,
) -> endpoint_pb2.ClusterLoadAssignment:
    """``cluster_load_assignment`` memoized: every proxy reaching a service gets the same message
    object (building endpoints dominates generation time). The result is shared: never mutate it.

    Looked up by the identity of ``endpoints`` first (mesh views share one tuple per service, so this
    is the usual hit and hashes no endpoint), then by value (a bounded LRU)."""
    key = (cluster_name, id(endpoints), priorities, overprovisioning_factor)
    hit = _CLA_BY_IDENTITY.get(key)
    if hit is not None and hit[0] is endpoints:
        return hit[1]
    cla = _cluster_load_assignment_by_value(cluster_name, endpoints, priorities, overprovisioning_factor)
    if len(_CLA_BY_IDENTITY) >= _CLA_BY_IDENTITY_MAX:
        _CLA_BY_IDENTITY.clear()
    _CLA_BY_IDENTITY[key] = (endpoints, cla)  # holds the tuple: its id is not reused while the entry lives
    return cla


_CLA_BY_IDENTITY: dict[tuple[object, ...], tuple[tuple[Endpoint, ...], endpoint_pb2.ClusterLoadAssignment]] = {}
_CLA_BY_IDENTITY_MAX = 8192


@functools.lru_cache(maxsize=8192)
def _cluster_load_assignment_by_value(
    cluster_name: str,
    endpoints: tuple[Endpoint, ...],
    priorities: tuple[tuple[str, int], ...] | None,
    overprovisioning_factor: int | None,
) -> endpoint_pb2.ClusterLoadAssignment:
    return cluster_load_assignment(cluster_name, endpoints, priorities, overprovisioning_factor)


def static_cluster(name: str, address: str, port: int, *, protocol: str = "tcp") -> cluster_pb2.Cluster:
    """A STATIC cluster of one address (the local application behind an inbound)."""
    cla = endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=[
                    endpoint_components_pb2.LbEndpoint(
                        endpoint=endpoint_components_pb2.Endpoint(address=socket_address(address, port))
                    )
                ]
            )
        ],
    )
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration(CONNECT_TIMEOUT_SECONDS),
        load_assignment=cla,
        typed_extension_protocol_options=_http2_options(protocol),
    )


def eds_cluster(name: str, *, protocol: str = "tcp") -> cluster_pb2.Cluster:
    """An EDS cluster whose ClusterLoadAssignment (named like the cluster) comes over ADS."""
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=ads_config_source()),
        connect_timeout=duration(CONNECT_TIMEOUT_SECONDS),
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        typed_extension_protocol_options=_http2_options(protocol),
    )


def route_configuration(name: str, service: str, cluster: str) -> route_pb2.RouteConfiguration:
    """One virtual host (``*``) named after ``service`` with one route: every path to ``cluster``."""
    return route_pb2.RouteConfiguration(
        name=name,
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        virtual_hosts=[
            route_components_pb2.VirtualHost(
                name=service,
                domains=["*"],
                routes=[
                    route_components_pb2.Route(
                        match=route_components_pb2.RouteMatch(prefix="/"),
                        route=route_components_pb2.RouteAction(cluster=cluster),
                    )
                ],
            )
        ],
    )


def hcm(
    stat_prefix: str,
    *,
    route_config: route_pb2.RouteConfiguration | None = None,
    rds_name: str | None = None,
    http_filters: Iterable[hcm_pb2.HttpFilter] = (),
) -> hcm_pb2.HttpConnectionManager:
    """An HTTP connection manager (codec AUTO: HTTP/1.1 and HTTP/2 downstream) with ``http_filters``
    then the router filter, routing with ``route_config`` inline or by RDS name ``rds_name`` over ADS."""
    out = hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        http_filters=[*http_filters, hcm_pb2.HttpFilter(name=ROUTER_FILTER, typed_config=pack(router_pb2.Router()))],
    )
    if route_config is not None:
        out.route_config.CopyFrom(route_config)
    elif rds_name is not None:
        out.rds.CopyFrom(hcm_pb2.Rds(config_source=ads_config_source(), route_config_name=rds_name))
    else:
        raise ValueError("hcm needs route_config or rds_name")
    return out


def network_filter(
    protocol: str,
    *,
    stat_prefix: str,
    service: str,
    cluster: str,
    route_name: str,
    http_filters: Iterable[hcm_pb2.HttpFilter] = (),
) -> listener_components_pb2.Filter:
    """The main network filter of a listener: HCM with an inline route (and ``http_filters`` before
    the router) for HTTP protocols, else tcp_proxy."""
    if protocol in HTTP_PROTOCOLS:
        manager = hcm(
            stat_prefix,
            route_config=route_configuration(route_name, service, cluster),
            http_filters=http_filters,
        )
        return listener_components_pb2.Filter(name=HCM_FILTER, typed_config=pack(manager))
    return tcp_proxy_filter(stat_prefix, cluster)


def tcp_proxy_filter(stat_prefix: str, cluster: str) -> listener_components_pb2.Filter:
    """A tcp_proxy network filter forwarding every connection to ``cluster``."""
    tcp = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=cluster)
    return listener_components_pb2.Filter(name=TCP_PROXY_FILTER, typed_config=pack(tcp))


def sni_filter_chain(
    sni: str,
    filters: Iterable[listener_components_pb2.Filter],
    transport_socket: base_pb2.TransportSocket | None = None,
) -> listener_components_pb2.FilterChain:
    """A filter chain named ``sni`` taking the TLS connections whose SNI is ``sni`` (ingress, egress)."""
    chain = listener_components_pb2.FilterChain(
        name=sni,
        filter_chain_match=listener_components_pb2.FilterChainMatch(server_names=[sni], transport_protocol="tls"),
        filters=list(filters),
    )
    if transport_socket is not None:
        chain.transport_socket.CopyFrom(transport_socket)
    return chain


def blackhole_cluster(name: str) -> cluster_pb2.Cluster:
    """A STATIC cluster with no endpoints: connections sent to it are closed (unknown SNIs)."""
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration(1),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(cluster_name=name),
    )


def listener(
    name: str,
    address: str,
    port: int,
    *,
    direction: int,
    filters: Iterable[listener_components_pb2.Filter] = (),
    filter_chains: Iterable[listener_components_pb2.FilterChain] = (),
    listener_filters: Iterable[listener_components_pb2.ListenerFilter] = (),
) -> listener_pb2.Listener:
    """A listener on ``address:port`` with ``filter_chains`` or one chain of ``filters``;
    ``direction`` is ``base_pb2.INBOUND``/``OUTBOUND``."""
    chains = list(filter_chains) or [listener_components_pb2.FilterChain(filters=list(filters))]
    return listener_pb2.Listener(
        name=name,
        address=socket_address(address, port),
        traffic_direction=direction,
        listener_filters=list(listener_filters),
        filter_chains=chains,
    )


def api_listener(name: str, manager: hcm_pb2.HttpConnectionManager) -> listener_pb2.Listener:
    """A listener that only carries an HCM for a proxyless gRPC client (``xds:///<name>``)."""
    return listener_pb2.Listener(
        name=name,
        api_listener=api_listener_pb2.ApiListener(api_listener=pack(manager)),
    )


def edit_filters(
    listener: listener_pb2.Listener,
    on_hcm: Callable[[hcm_pb2.HttpConnectionManager], None],
    on_tcp: Callable[[tcp_proxy_pb2.TcpProxy], None],
) -> None:
    """Call ``on_hcm``/``on_tcp`` on every HCM/tcp_proxy config of ``listener``'s filter chains, in
    place (each is unpacked, edited and packed again)."""
    for chain in listener.filter_chains:
        for f in chain.filters:
            if f.name == HCM_FILTER:
                manager = hcm_pb2.HttpConnectionManager()
                f.typed_config.Unpack(manager)
                on_hcm(manager)
                f.typed_config.CopyFrom(pack(manager))
            elif f.name == TCP_PROXY_FILTER:
                tcp = tcp_proxy_pb2.TcpProxy()
                f.typed_config.Unpack(tcp)
                on_tcp(tcp)
                f.typed_config.CopyFrom(pack(tcp))


def routes(manager: hcm_pb2.HttpConnectionManager) -> list[route_components_pb2.Route]:
    """Every forwarding route of ``manager``'s inline route configuration (those with a route action:
    a MeshHTTPRoute's redirects and direct responses take no timeout, retry or hash policy)."""
    return [r for vh in manager.route_config.virtual_hosts for r in vh.routes if r.WhichOneof("action") == "route"]
