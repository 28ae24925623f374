"""``EnvoyResources``: the output of every generator, one tuple of protobuf messages per xDS type.

The tuples are sorted by resource name, so equal inputs give equal outputs (byte for byte once
serialized). Protobuf messages are mutable objects; treat them as frozen once generated (the xDS
cache shares them between proxies and serializes them once).

``check_consistent`` lists what a generator got wrong: an EDS cluster without its
ClusterLoadAssignment, an RDS route configuration or route cluster that is missing. ``to_dict``
renders everything as plain JSON-able data in Envoy's own field spelling (for golden files, the
inspect API and validation bootstraps).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

# Every type packed into an Any by the generators must be importable when a message is rendered
# (pitfall 6); importing the builders module imports them all.
from atoll.xds.generate import envoy as _envoy

__all__ = [
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "LISTENER_TYPE",
    "ROUTE_TYPE",
    "SECRET_TYPE",
    "TYPE_ORDER",
    "EnvoyResources",
    "message_to_dict",
    "resource_name",
]

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
TYPE_ORDER = (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE)
"""The order to push types in so that nothing references a resource not yet sent (CDS, EDS, LDS, RDS)."""


def resource_name(message: Message) -> str:
    """The xDS name of a resource: ``cluster_name`` for a ClusterLoadAssignment, ``name`` otherwise."""
    if isinstance(message, endpoint_pb2.ClusterLoadAssignment):
        return str(message.cluster_name)
    return str(message.name)


def message_to_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-able data with Envoy's snake_case field names (default values omitted)."""
    # MessageToDict nests OrderedDicts for Anys; a JSON round trip leaves only plain dicts and lists.
    # Fields come in declaration order; protobuf maps iterate in hash order, so they are sorted.
    out: dict[str, Any] = _sort_maps(
        json.loads(json_format.MessageToJson(message, preserving_proto_field_name=True, indent=None))
    )
    return out


# Map fields of the Envoy messages Atoll generates: keys sorted; under the deep ones (Struct values)
# every nested mapping is sorted too.
_MAPS_DEEP = frozenset(("filter_metadata", "typed_filter_metadata", "metadata"))
_MAPS = frozenset(("typed_extension_protocol_options", "typed_per_filter_config", "policies"))


def _sort_maps(value: Any, deep: bool = False) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in sorted(value.items()) if deep else value.items():
            if deep or k in _MAPS_DEEP:
                out[k] = _sort_maps(v, True)
            elif k in _MAPS:
                out[k] = _sort_map(v)
            else:
                out[k] = _sort_maps(v)
        return out
    if isinstance(value, list):
        return [_sort_maps(v, deep) for v in value]
    return value


def _sort_map(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {k: _sort_maps(v) for k, v in sorted(value.items())}


@dataclass(frozen=True, slots=True)
class EnvoyResources:
    """The Envoy resources of one proxy, by xDS type, each tuple sorted by name."""

    listeners: tuple[listener_pb2.Listener, ...] = ()
    clusters: tuple[cluster_pb2.Cluster, ...] = ()
    route_configurations: tuple[route_pb2.RouteConfiguration, ...] = ()
    cluster_load_assignments: tuple[endpoint_pb2.ClusterLoadAssignment, ...] = ()
    secrets: tuple[secret_pb2.Secret, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        listeners: list[listener_pb2.Listener] | tuple[listener_pb2.Listener, ...] = (),
        clusters: list[cluster_pb2.Cluster] | tuple[cluster_pb2.Cluster, ...] = (),
        route_configurations: list[route_pb2.RouteConfiguration] | tuple[route_pb2.RouteConfiguration, ...] = (),
        cluster_load_assignments: list[endpoint_pb2.ClusterLoadAssignment]
        | tuple[endpoint_pb2.ClusterLoadAssignment, ...] = (),
        secrets: list[secret_pb2.Secret] | tuple[secret_pb2.Secret, ...] = (),
    ) -> EnvoyResources:
        """Sort each kind by name and drop exact duplicates; two different resources with one name
        are a generator bug and raise ``ValueError``."""
        return cls(
            listeners=_unique(listeners),
            clusters=_unique(clusters),
            route_configurations=_unique(route_configurations),
            cluster_load_assignments=_unique(cluster_load_assignments),
            secrets=_unique(secrets),
        )

    def by_type(self) -> Mapping[str, Mapping[str, Message]]:
        """``{type_url: {name: message}}`` for every type, in push order (``TYPE_ORDER``)."""
        kinds: dict[str, tuple[Message, ...]] = {
            CLUSTER_TYPE: self.clusters,
            ENDPOINT_TYPE: self.cluster_load_assignments,
            LISTENER_TYPE: self.listeners,
            ROUTE_TYPE: self.route_configurations,
            SECRET_TYPE: self.secrets,
        }
        return {t: {resource_name(m): m for m in kinds[t]} for t in TYPE_ORDER}

    def check_consistent(self) -> list[str]:
        """Problems in the references between resources; empty when consistent."""
        problems: list[str] = []
        cluster_names = {c.name for c in self.clusters}
        cla_names = {c.cluster_name for c in self.cluster_load_assignments}
        route_names = {r.name for r in self.route_configurations}
        for c in self.clusters:
            if c.type == cluster_pb2.Cluster.EDS:
                want = c.eds_cluster_config.service_name or c.name
                if want not in cla_names:
                    problems.append(f'cluster "{c.name}": no ClusterLoadAssignment "{want}"')
        for name in sorted(cla_names - cluster_names):
            problems.append(f'ClusterLoadAssignment "{name}": no cluster uses it')
        referenced: set[str] = set()
        route_configs = list(self.route_configurations)
        for listener in self.listeners:
            for hcm in _hcms(listener):
                if hcm.HasField("rds"):
                    if hcm.rds.route_config_name not in route_names:
                        problems.append(
                            f'listener "{listener.name}": no RouteConfiguration "{hcm.rds.route_config_name}"'
                        )
                elif hcm.HasField("route_config"):
                    route_configs.append(hcm.route_config)
            for fc in listener.filter_chains:
                for f in fc.filters:
                    if f.name == "envoy.filters.network.tcp_proxy":
                        tcp = _envoy.tcp_proxy_pb2.TcpProxy()
                        f.typed_config.Unpack(tcp)
                        referenced.add(tcp.cluster)
        for rc in route_configs:
            for vh in rc.virtual_hosts:
                for r in vh.routes:
                    if r.route.cluster:
                        referenced.add(r.route.cluster)
        for name in sorted(referenced - cluster_names):
            problems.append(f'cluster "{name}" is referenced but not defined')
        return problems

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """Every resource as JSON-able data, keyed ``listeners``, ``clusters``, ... (empty kinds left out)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for key, items in (
            ("clusters", self.clusters),
            ("cluster_load_assignments", self.cluster_load_assignments),
            ("listeners", self.listeners),
            ("route_configurations", self.route_configurations),
            ("secrets", self.secrets),
        ):
            if items:
                out[key] = [message_to_dict(m) for m in items]
        return out


def _hcms(listener: listener_pb2.Listener) -> list[hcm_pb2.HttpConnectionManager]:
    out: list[hcm_pb2.HttpConnectionManager] = []
    if listener.HasField("api_listener"):
        hcm = hcm_pb2.HttpConnectionManager()
        listener.api_listener.api_listener.Unpack(hcm)
        out.append(hcm)
    for fc in listener.filter_chains:
        for f in fc.filters:
            if f.name == "envoy.filters.network.http_connection_manager":
                hcm = hcm_pb2.HttpConnectionManager()
                f.typed_config.Unpack(hcm)
                out.append(hcm)
    return out


def _unique(items: Any) -> tuple[Any, ...]:
    by_name: dict[str, Message] = {}
    for m in items:
        name = resource_name(m)
        seen = by_name.get(name)
        if seen is not None and seen != m:
            raise ValueError(f'two different {type(m).__name__} resources named "{name}"')
        by_name[name] = m
    return tuple(by_name[n] for n in sorted(by_name))
