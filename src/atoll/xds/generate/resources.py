"""``EnvoyResources``: the output of every generator, one tuple of protobuf messages per xDS type.

The tuples are sorted by resource name, so equal inputs give equal outputs (byte for byte once
serialized). Protobuf messages are mutable objects; treat them as frozen once generated (the xDS
cache shares them between proxies and serializes them once).

Type URLs, the push order, ``resource_name`` and the walkers of references between resources come from
``atoll.xds.vocabulary`` (shared with the ADS server); the ``*_TYPE`` names here are aliases kept for
the generators' callers. ``check_consistent`` lists what a generator got wrong: an EDS cluster without
its ClusterLoadAssignment, an RDS route configuration or route cluster that is missing. ``to_dict``
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
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

# Every type packed into an Any by the generators must be importable when a message is rendered
# (pitfall 6); importing the builders module imports them all.
from atoll.xds.generate import envoy as _envoy  # noqa: F401
from atoll.xds.vocabulary import (
    CLUSTER,
    CLUSTER_NAMES,
    EDS_NAMES,
    ENDPOINT,
    LISTENER,
    PUSH_ORDER,
    RDS_NAMES,
    ROUTE,
    SECRET,
    Dangling,
    Rule,
    clusters_named_by,
    eds_names_of_cluster,
    missing_references,
    rds_names_of_listener,
    resource_name,
)

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

# The generators' names for the type URLs of ``atoll.xds.vocabulary`` (kept for their callers).
LISTENER_TYPE = LISTENER
ROUTE_TYPE = ROUTE
CLUSTER_TYPE = CLUSTER
ENDPOINT_TYPE = ENDPOINT
SECRET_TYPE = SECRET
TYPE_ORDER = PUSH_ORDER
"""The one push order (``atoll.xds.vocabulary.PUSH_ORDER``): SDS, CDS, EDS, LDS, RDS."""


def message_to_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-able data with Envoy's snake_case field names (default values omitted)."""
    # MessageToDict nests OrderedDicts for Anys; a JSON round trip leaves only plain dicts and lists.
    # Fields come in declaration order; protobuf maps iterate in hash order, so they are sorted.
    out: dict[str, Any] = _sort_maps(
        json.loads(json_format.MessageToJson(message, preserving_proto_field_name=True, indent=None))
    )
    return out


# Map fields of the Envoy messages Atoll generates: keys sorted; under the deep ones (Struct values)
# every nested mapping is sorted too (an access log's ``json_format`` is a Struct).
_MAPS_DEEP = frozenset(("filter_metadata", "typed_filter_metadata", "metadata", "json_format"))
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
        """``{type_url: {name: message}}`` for every type, in push order (``PUSH_ORDER``)."""
        kinds: dict[str, tuple[Message, ...]] = {
            CLUSTER: self.clusters,
            ENDPOINT: self.cluster_load_assignments,
            LISTENER: self.listeners,
            ROUTE: self.route_configurations,
            SECRET: self.secrets,
        }
        return {t: {resource_name(m): m for m in kinds[t]} for t in PUSH_ORDER}

    def check_consistent(self) -> list[str]:
        """Problems in the references between resources; empty when consistent. Stricter than the
        snapshot's check: a ClusterLoadAssignment no cluster uses and a route or TCP proxy to an
        undefined cluster are reported too (SDS secrets are not: they may come from elsewhere)."""
        by_type = self.by_type()
        found: dict[str, list[Dangling]] = {CLUSTER: [], ENDPOINT: [], ROUTE: []}
        for d in missing_references(by_type, _references, _GENERATED_REFERENCES):
            found[d.missing_type].append(d)
        orphans = sorted(set(by_type[ENDPOINT]) - set(by_type[CLUSTER]))
        return [
            *(f'cluster "{d.owner}": no ClusterLoadAssignment "{d.missing}"' for d in found[ENDPOINT]),
            *(f'ClusterLoadAssignment "{n}": no cluster uses it' for n in orphans),
            *(f'listener "{d.owner}": no RouteConfiguration "{d.missing}"' for d in found[ROUTE]),
            *(f'cluster "{n}" is referenced but not defined' for n in sorted({d.missing for d in found[CLUSTER]})),
        ]

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


#: What a generator's output must hold together: an EDS cluster's ClusterLoadAssignment, a listener's RDS
#: route configuration, and every cluster a route or TCP proxy sends to.
_GENERATED_REFERENCES = (
    Rule(CLUSTER, EDS_NAMES, ENDPOINT),
    Rule(LISTENER, RDS_NAMES, ROUTE),
    Rule(LISTENER, CLUSTER_NAMES, CLUSTER),
    Rule(ROUTE, CLUSTER_NAMES, CLUSTER),
)


def _references(message: Message) -> tuple[tuple[str, ...], ...]:
    return eds_names_of_cluster(message), rds_names_of_listener(message), (), clusters_named_by(message)


def _unique(items: Any) -> tuple[Any, ...]:
    by_name: dict[str, Message] = {}
    for m in items:
        name = resource_name(m)
        seen = by_name.get(name)
        if seen is not None and seen != m:
            raise ValueError(f'two different {type(m).__name__} resources named "{name}"')
        by_name[name] = m
    return tuple(by_name[n] for n in sorted(by_name))
