"""Where MeshHTTPRoute/MeshTCPRoute backends lead: split clusters and their endpoints (pure).

A route backend (``settings.routes.Backend``) is a service and a tag subset. Each distinct
(service, tags) a proxy's routes name becomes a ``Split``: a cluster of its own, named
``split_cluster_name`` (``<service>`` for a whole service, ``<service>{version=v2}`` for a subset),
whose endpoints are those of the service that carry the tags (``subset_endpoints``). Remote zones
take part through their ingresses: the index already has one ingress endpoint per tag set a remote
zone offers (weight = its instance count), so filtering by tags keeps exactly the remote instances
of the subset, weighted by how many there are. The sidecar reaches them with the SNI
``<service>{mesh=<mesh>,<tags>}``, which the remote ingress accepts for every subset any route of
the mesh names (``route_subsets``).

``route_backends`` tells which services an outbound depends on through routes (so an endpoint change
of a backend service reaches the proxies routing to it). ``subset_endpoints`` is memoized on the
endpoint tuple's identity and the tags: equal inputs give the same tuple object, which keeps the
shared ClusterLoadAssignments and the endpoint fast path working.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from atoll.topology.external import ExternalView
from atoll.topology.index import Endpoint
from atoll.topology.matching import ROUTE_KINDS, PolicyEntry
from atoll.topology.settings import PolicySettings
from atoll.topology.settings.routes import Backend
from atoll.topology.tags import Protocol, Tags

ANY_SERVICE = "*"
"""The key of ``route_backends`` for routes attached to every service (``to[].targetRef`` Mesh)."""

__all__ = [
    "ANY_SERVICE",
    "Split",
    "route_backends",
    "route_subsets",
    "routed_backends",
    "split_cluster_name",
    "subset_endpoints",
]


@dataclass(frozen=True, slots=True)
class Split:
    """One cluster a route sends to: the instances of ``service`` that carry ``tags``."""

    name: str
    service: str
    tags: Tags
    endpoints: tuple[Endpoint, ...]
    protocol: Protocol = "tcp"
    """The backend service's protocol."""
    external: ExternalView | None = None
    """Set when the backend is an ExternalService (never with tags): its cluster is built as an
    outbound's to it would be."""
    via_egress: bool = False

    @property
    def has_assignment(self) -> bool:
        """Whether the cluster is an EDS one (not an ExternalService reached directly)."""
        return self.external is None or self.via_egress


def split_cluster_name(service: str, tags: Mapping[str, str]) -> str:
    """``backend`` for the whole service (its outbound's cluster), ``backend{version=v2}`` for a subset."""
    if not tags:
        return service
    return f"{service}{{{','.join(f'{k}={v}' for k, v in sorted(tags.items()))}}}"


@functools.lru_cache(maxsize=8192)
def subset_endpoints(endpoints: tuple[Endpoint, ...], tags: Tags) -> tuple[Endpoint, ...]:
    """The endpoints (local instances and remote ingresses' tag sets) that carry every tag of ``tags``."""
    if not tags:
        return endpoints
    return tuple(ep for ep in endpoints if all(ep.tags.get(k) == v for k, v in tags.items()))


def routed_backends(settings: PolicySettings, http: bool) -> tuple[Backend, ...]:
    """The backends of the route that applies to an outbound (HTTP route first on HTTP services)."""
    if http and settings.http_route is not None:
        return settings.http_route.backends()
    if settings.tcp_route is not None:
        return settings.tcp_route.backends
    return ()


def _policy_backends(policy: PolicyEntry) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """(to-service, backendRef) of every backendRef and mirror of a route policy."""
    for item in policy.spec.get("to") or ():
        ref = item.get("targetRef") or {}
        to = ANY_SERVICE if ref.get("kind") == "Mesh" else str(ref.get("name") or "")
        for rule in item.get("rules") or ():
            default = rule.get("default") or {}
            for ref in default.get("backendRefs") or ():
                yield to, ref
            for f in default.get("filters") or ():
                mirror = f.get("requestMirror")
                if mirror and mirror.get("backendRef"):
                    yield to, mirror["backendRef"]


def route_backends(policies: Iterable[PolicyEntry]) -> Mapping[str, frozenset[str]]:
    """Per service routes are attached to (``to[].targetRef.name``; ``ANY_SERVICE`` for a ``Mesh``
    targetRef), the services they send to."""
    out: dict[str, set[str]] = {}
    for policy in policies:
        if policy.type in ROUTE_KINDS:
            for to, ref in _policy_backends(policy):
                if to and ref.get("name"):
                    out.setdefault(str(to), set()).add(str(ref["name"]))
    return {k: frozenset(v) for k, v in out.items()}


def route_subsets(policies: Iterable[PolicyEntry]) -> Mapping[str, frozenset[Tags]]:
    """Per service, the tag subsets routes of the mesh send to (what ingresses must offer)."""
    out: dict[str, set[Tags]] = {}
    for policy in policies:
        if policy.type in ROUTE_KINDS:
            for _, ref in _policy_backends(policy):
                tags = ref.get("tags")
                if ref.get("name") and tags:
                    out.setdefault(str(ref["name"]), set()).add(Tags(dict(tags)))
    return {k: frozenset(v) for k, v in out.items()}
