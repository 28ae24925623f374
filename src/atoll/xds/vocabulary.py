"""The xDS vocabulary: type URLs, push order, resource names and the references between resources.

Both halves of the xDS code speak it: ``atoll.xds.generate`` (which builds Envoy messages) and
``atoll.xds.server`` (which serves them). It imports only the Envoy protos: no store, no I/O, neither of
those two packages. What it knows:

- The five resource types Atoll serves, as type URLs (``LISTENER``, ``ROUTE``, ``CLUSTER``, ``ENDPOINT``,
  ``SECRET``), each derived from its message descriptor; ``type_url_of`` gives any message's URL. No
  other module spells ``type.googleapis.com/``.
- ``PUSH_ORDER``: the order a stream sends types in, secrets first, clusters before their endpoints,
  listeners before their routes (make-before-break for references). It is the order Envoy receives
  types in; ``WILDCARD_TYPES`` are those whose empty subscription means "everything".
- ``resource_name``: ``cluster_name`` for a ClusterLoadAssignment, ``name`` otherwise.
- The references one resource makes to others, found by one walker over a listener's HTTP connection
  managers (``http_connection_managers``): the ClusterLoadAssignment an EDS cluster needs, the RDS names
  of a listener, the SDS secrets fetched over ADS, the clusters named by routes and TCP proxies.
- ``missing_references``: the one consistency check. Given resources by type, how to read a resource's
  references and the ``Rule``s to hold (``SERVED_REFERENCES`` for what the ADS server requires), it
  yields every ``Dangling`` reference; the snapshot and the generators' ``check_consistent`` word them
  for their readers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2
from google.protobuf.message import Message

TYPE_URL_PREFIX = "type.googleapis.com/"
T = TypeVar("T")


def type_url_of(message: Message | type[Message]) -> str:
    """The ``Any`` type URL of a message or a message class."""
    return TYPE_URL_PREFIX + str(message.DESCRIPTOR.full_name)


LISTENER = type_url_of(listener_pb2.Listener)
ROUTE = type_url_of(route_pb2.RouteConfiguration)
CLUSTER = type_url_of(cluster_pb2.Cluster)
ENDPOINT = type_url_of(endpoint_pb2.ClusterLoadAssignment)
SECRET = type_url_of(secret_pb2.Secret)

#: Every type Atoll serves, in push order: secrets first, clusters before their endpoints, listeners
#: before their routes (make-before-break for references).
PUSH_ORDER: tuple[str, ...] = (SECRET, CLUSTER, ENDPOINT, LISTENER, ROUTE)
KNOWN_TYPES: frozenset[str] = frozenset(PUSH_ORDER)
#: Types for which an empty SotW name list / legacy empty delta subscribe means "everything".
WILDCARD_TYPES: frozenset[str] = frozenset({LISTENER, CLUSTER})

_HCM = type_url_of(hcm_pb2.HttpConnectionManager)
_TCP_PROXY = type_url_of(tcp_proxy_pb2.TcpProxy)
_UPSTREAM_TLS = type_url_of(tls_pb2.UpstreamTlsContext)
_DOWNSTREAM_TLS = type_url_of(tls_pb2.DownstreamTlsContext)


def resource_name(message: Message) -> str:
    """The xDS name of a resource: ``cluster_name`` for a ClusterLoadAssignment, ``name`` otherwise."""
    if isinstance(message, endpoint_pb2.ClusterLoadAssignment):
        return str(message.cluster_name)
    return str(getattr(message, "name"))  # noqa: B009 - every other served type has `name`


# --- references between resources ------------------------------------------------------------------


def _filter_chains(listener: listener_pb2.Listener) -> list[listener_components_pb2.FilterChain]:
    chains = [*listener.filter_chains]
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    return chains


def _network_filter_configs(listener: listener_pb2.Listener, type_url: str) -> Iterator[Any]:
    """The packed configs of a listener's network filters of one type (and its API listener's)."""
    for chain in _filter_chains(listener):
        for f in chain.filters:
            if f.HasField("typed_config") and f.typed_config.type_url == type_url:
                yield f.typed_config
    if listener.HasField("api_listener") and listener.api_listener.api_listener.type_url == type_url:
        yield listener.api_listener.api_listener


def http_connection_managers(listener: listener_pb2.Listener) -> Iterator[hcm_pb2.HttpConnectionManager]:
    """Every HTTP connection manager of a listener: in its filter chains, default chain, API listener."""
    for packed in _network_filter_configs(listener, _HCM):
        hcm = hcm_pb2.HttpConnectionManager()
        packed.Unpack(hcm)
        yield hcm


def eds_names_of_cluster(message: Message) -> tuple[str, ...]:
    """The ClusterLoadAssignment name an EDS cluster asks for (``service_name`` or the cluster name)."""
    if not isinstance(message, cluster_pb2.Cluster):
        return ()
    if message.WhichOneof("cluster_discovery_type") != "type" or message.type != cluster_pb2.Cluster.EDS:
        return ()
    return (message.eds_cluster_config.service_name or message.name,)


def rds_names_of_listener(message: Message) -> tuple[str, ...]:
    """RDS route-configuration names referenced by the HTTP connection managers of a listener."""
    if not isinstance(message, listener_pb2.Listener):
        return ()
    hcms = http_connection_managers(message)
    return tuple(h.rds.route_config_name for h in hcms if h.WhichOneof("route_specifier") == "rds")


def clusters_named_by(message: Message) -> tuple[str, ...]:
    """Clusters a listener (TCP proxies, inline route configurations) or a route configuration routes to."""
    route_configs: list[route_pb2.RouteConfiguration] = []
    out: list[str] = []
    if isinstance(message, route_pb2.RouteConfiguration):
        route_configs.append(message)
    elif isinstance(message, listener_pb2.Listener):
        for hcm in http_connection_managers(message):
            if hcm.WhichOneof("route_specifier") == "route_config":
                route_configs.append(hcm.route_config)
        for packed in _network_filter_configs(message, _TCP_PROXY):
            tcp = tcp_proxy_pb2.TcpProxy()
            packed.Unpack(tcp)
            if tcp.WhichOneof("cluster_specifier") == "weighted_clusters":
                out.extend(c.name for c in tcp.weighted_clusters.clusters)
            else:
                out.append(tcp.cluster)
    for r in (r for rc in route_configs for vh in rc.virtual_hosts for r in vh.routes):
        if r.route.cluster:
            out.append(r.route.cluster)
        out.extend(c.name for c in r.route.weighted_clusters.clusters)  # MeshHTTPRoute splits
        out.extend(m.cluster for m in r.route.request_mirror_policies)
    return tuple(out)


def ads_secret_names(message: Message) -> tuple[str, ...]:
    """SDS secret names that a cluster or listener fetches over ADS (``sds_config { ads {} }``)."""
    sockets: list[Any] = []
    if isinstance(message, cluster_pb2.Cluster):
        if message.HasField("transport_socket"):
            sockets.append(message.transport_socket)
        sockets.extend(m.transport_socket for m in message.transport_socket_matches)
    elif isinstance(message, listener_pb2.Listener):
        sockets.extend(c.transport_socket for c in _filter_chains(message) if c.HasField("transport_socket"))
    out: list[str] = []
    for ts in sockets:
        cfg = ts.typed_config
        context: Any
        if cfg.type_url == _UPSTREAM_TLS:
            context = tls_pb2.UpstreamTlsContext()
        elif cfg.type_url == _DOWNSTREAM_TLS:
            context = tls_pb2.DownstreamTlsContext()
        else:
            continue
        cfg.Unpack(context)
        common = context.common_tls_context
        configs = [*common.tls_certificate_sds_secret_configs]
        if common.HasField("validation_context_sds_secret_config"):
            configs.append(common.validation_context_sds_secret_config)
        if common.HasField("combined_validation_context"):
            configs.append(common.combined_validation_context.validation_context_sds_secret_config)
        out.extend(c.name for c in configs if c.name and c.HasField("sds_config") and c.sds_config.HasField("ads"))
    return tuple(out)


# --- the consistency check --------------------------------------------------------------------------


class Dangling(NamedTuple):
    """``owner`` (a resource of type ``owner_type``) uses ``missing`` of type ``missing_type``, absent."""

    owner_type: str
    owner: str
    missing_type: str
    missing: str


#: Positions in a references tuple: ClusterLoadAssignment names, RDS names, ADS secret names, clusters.
EDS_NAMES, RDS_NAMES, SECRET_NAMES, CLUSTER_NAMES = 0, 1, 2, 3


class Rule(NamedTuple):
    """Resources of ``owner_type`` name resources of ``used_type`` at ``position`` of their references."""

    owner_type: str
    position: int
    used_type: str


#: What the ADS server requires of a snapshot: an EDS cluster's ClusterLoadAssignment, a listener's RDS
#: route configuration, and every SDS secret a cluster or listener fetches over ADS.
SERVED_REFERENCES: tuple[Rule, ...] = (
    Rule(CLUSTER, EDS_NAMES, ENDPOINT),
    Rule(LISTENER, RDS_NAMES, ROUTE),
    Rule(CLUSTER, SECRET_NAMES, SECRET),
    Rule(LISTENER, SECRET_NAMES, SECRET),
)


def served_references(message: Message) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """A resource's references that ``SERVED_REFERENCES`` checks (EDS, RDS and ADS secret names)."""
    return eds_names_of_cluster(message), rds_names_of_listener(message), ads_secret_names(message)


def missing_references(
    by_type: Mapping[str, Mapping[str, T]],
    references: Callable[[T], Sequence[Collection[str]]],
    rules: Iterable[Rule],
) -> Iterator[Dangling]:
    """Every name a resource of ``by_type`` uses (``references(resource)[rule.position]``) that
    ``by_type[rule.used_type]`` lacks, rule by rule, in the mappings' order."""
    for owner_type, position, used_type in rules:
        present = by_type.get(used_type, _NOTHING)
        for owner, resource in by_type.get(owner_type, _NOTHING).items():
            for name in references(resource)[position]:
                if name not in present:
                    yield Dangling(owner_type, owner, used_type, name)


_NOTHING: Mapping[str, Any] = MappingProxyType({})


def kind_of(type_url: str) -> str:
    """The message name of a type URL: ``Cluster``, ``ClusterLoadAssignment``, ..."""
    return type_url.rsplit(".", 1)[-1]


__all__ = [
    "CLUSTER",
    "CLUSTER_NAMES",
    "EDS_NAMES",
    "ENDPOINT",
    "KNOWN_TYPES",
    "LISTENER",
    "PUSH_ORDER",
    "RDS_NAMES",
    "ROUTE",
    "SECRET",
    "SECRET_NAMES",
    "SERVED_REFERENCES",
    "TYPE_URL_PREFIX",
    "WILDCARD_TYPES",
    "Dangling",
    "Rule",
    "ads_secret_names",
    "clusters_named_by",
    "eds_names_of_cluster",
    "http_connection_managers",
    "kind_of",
    "missing_references",
    "rds_names_of_listener",
    "resource_name",
    "served_references",
    "type_url_of",
]
