"""The zone ingress: what this zone offers to other zones, and the view its Envoy is built from.

``available_services(mesh_views)`` counts, per mesh and full tag set, the ready local inbounds —
the ``availableServices`` a zone CP keeps on its ZoneIngress (remote zones weight their endpoint
for this zone by these counts). ``ingress_view(name, zone_ingress, mesh_views)`` lists, per mesh
and service, the SNI other zones' sidecars use (``<service>{mesh=<mesh>}``) and the local endpoints
that traffic goes to; plus, for every tag subset of a local service that a MeshHTTPRoute/MeshTCPRoute
of the mesh sends to (``MeshView.route_subsets``) or that a VirtualOutbound name narrows to
(``VirtualName.tags`` in ``MeshView.names``) and that has local instances, the subset's SNI
(``<service>{mesh=<mesh>,version=v2}``) to those instances only (remote sidecars weight it by the
instance count of the matching ``availableServices`` entries).
An ExternalService pinned to this zone (``kuma.io/zone``) is offered too when the
zone has an egress (entry ``externalService: true``, instances = the number of local egresses; its
route forwards to the local egresses, which terminate and originate). Only local instances count:
endpoints that are themselves other zones' ingresses are never offered again (no transit between
zones). Pure functions of their inputs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from atoll.resources.meta import Resource
from atoll.resources.models.zone_ingress import ZoneIngressSpec
from atoll.topology.external import ExternalView
from atoll.topology.index import Endpoint
from atoll.topology.routes import split_cluster_name, subset_endpoints
from atoll.topology.tags import SERVICE_TAG, Tags
from atoll.topology.view import MeshView, endpoints_by_service, sni


@dataclass(frozen=True, slots=True)
class IngressRoute:
    """One SNI the ingress accepts and where it forwards it (a cluster per mesh and service)."""

    mesh: str
    service: str
    sni: str
    cluster: str
    endpoints: tuple[Endpoint, ...]

    @classmethod
    def of(cls, mesh: str, service: str, endpoints: tuple[Endpoint, ...], tags: Tags | None = None) -> IngressRoute:
        """The route of ``service`` (or of its ``tags`` subset) in ``mesh``: its SNI, and the cluster
        ``<mesh>:<service>`` (``<mesh>:<service>{version=v2}`` for a subset)."""
        return cls(
            mesh=mesh,
            service=service,
            sni=sni(service, mesh, tags),
            cluster=ingress_cluster_name(mesh, split_cluster_name(service, tags or {})),
            endpoints=endpoints,
        )


@dataclass(frozen=True, slots=True)
class IngressView:
    name: str
    zone: str
    address: str
    port: int
    routes: tuple[IngressRoute, ...]


def local_endpoints(view: MeshView) -> dict[str, tuple[Endpoint, ...]]:
    return {
        service: local
        for service, eps in endpoints_by_service(view).items()
        if service not in view.index.externals and (local := tuple(e for e in eps if not e.ingress and not e.egress))
    }


def available_services(mesh_views: Iterable[MeshView]) -> list[dict[str, Any]]:
    """``availableServices`` entries (Universal shape) for the ready local inbounds of every mesh."""
    out: list[dict[str, Any]] = []
    for view in sorted(mesh_views, key=lambda v: v.name):
        counts: Counter[Tags] = Counter()
        for eps in local_endpoints(view).values():
            for e in eps:
                counts[e.tags] += 1
        for tags, n in sorted(counts.items(), key=lambda kv: sorted(kv[0].items())):
            out.append({"tags": dict(sorted(tags.items())), "instances": n, "mesh": view.name})
        for ev, _ in pinned_externals(view):
            out.append(
                {
                    "tags": dict(sorted(ev.tags.items())),
                    "instances": len(view.index.egresses),
                    "mesh": view.name,
                    "externalService": True,
                }
            )
    return out


def pinned_externals(view: MeshView) -> list[tuple[ExternalView, tuple[Endpoint, ...]]]:
    """ExternalServices pinned to this zone that other zones reach through this zone's ingress, with
    the local egress endpoints the ingress forwards them to (none without mTLS or an egress)."""
    mtls = view.mesh.spec.mtls
    if mtls is None or mtls.enabled() is None or not view.index.egresses:
        return []
    out = []
    for _, ev in sorted(view.index.externals.items()):
        if ev.zone != view.zone:
            continue
        eps = tuple(
            Endpoint(address=a, port=p, tags=ev.tags, zone=view.zone, egress=True) for a, p in view.index.egresses
        )
        out.append((ev, eps))
    return out


def ingress_cluster_name(mesh: str, service: str) -> str:
    return f"{mesh}:{service}"


def _subset_routes(
    view: MeshView, service: str, eps: tuple[Endpoint, ...], named: frozenset[Tags] = frozenset()
) -> list[IngressRoute]:
    """Routes for the tag subsets of ``service`` that routes of the mesh send to, or that names of the
    mesh narrow to (``named``), and that run here."""
    subsets = set(view.route_subsets.get(service, ())) | named
    out = []
    for tags in sorted(subsets, key=lambda t: sorted(t.items())):
        subset = subset_endpoints(eps, tags)
        if subset:
            out.append(IngressRoute.of(view.name, service, subset, tags))
    return out


def ingress_view(name: str, zone_ingress: Resource[ZoneIngressSpec], mesh_views: Iterable[MeshView]) -> IngressView:
    """The routes of one zone ingress: every locally served service of every mesh with mTLS (cross-zone
    traffic is mTLS end to end, routed by SNI; without mTLS other zones never send any)."""
    spec = zone_ingress.spec
    routes: list[IngressRoute] = []
    for view in sorted(mesh_views, key=lambda v: v.name):
        named = view.names.subsets()
        for service, eps in sorted(local_endpoints(view).items()):
            routes.append(IngressRoute.of(view.name, service, eps))
            routes.extend(_subset_routes(view, service, eps, named.get(service, frozenset())))
        routes.extend(IngressRoute.of(view.name, ev.service, eps) for ev, eps in pinned_externals(view))
    return IngressView(
        name=name,
        zone=spec.zone or "",
        address=spec.networking.address or "0.0.0.0",
        port=spec.networking.port,
        routes=tuple(routes),
    )


__all__ = [
    "SERVICE_TAG",
    "IngressRoute",
    "IngressView",
    "available_services",
    "ingress_cluster_name",
    "ingress_view",
    "local_endpoints",
    "pinned_externals",
]
