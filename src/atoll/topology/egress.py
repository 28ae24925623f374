"""The zone egress: what the local egress proxy routes, as a view its Envoy is built from (pure).

``egress_view(name, zone_egress, mesh_views)`` lists, for every mesh with mTLS:

- **pass-through routes**: every service (and zone-pinned ExternalService) that other zones' ingresses
  offer: SNI ``<service>{mesh=<mesh>}`` -> the remote ingresses (``MeshIndex.remote``: weight = that
  zone's instances, locality = that zone), and the same for each tag subset a route of the mesh sends
  to or a VirtualOutbound name narrows to (``ServiceNames.subsets``; SNI
  ``<service>{mesh=<mesh>,version=v2}`` -> the ingresses offering it).
  The egress never decrypts these: the sidecars at both ends
  do mTLS end to end, as through an ingress.
- **external routes**: every ExternalService usable from this zone (no ``kuma.io/zone`` tag, or this
  zone's): SNI ``<service>{mesh=<mesh>}`` on which the egress *terminates* the mesh mTLS with its own
  identity for that mesh (``spiffe://<mesh>/zone-egress``, issued by the mesh CA), checks the caller
  against the MeshTrafficPermissions that select the external service (``targetRef`` Mesh or
  MeshService ``<name>``: the ExternalService's tags stand in for an inbound's), and originates to the
  external address (plain, or TLS per ``networking.tls``).

An egress serves every mesh: sidecars only send it traffic when their mesh routes through it
(``routing.zoneEgress``), or when another zone's ingress forwards a pinned ExternalService to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from atoll.resources.meta import Resource
from atoll.resources.models.zone_egress import ZoneEgressSpec
from atoll.topology.external import ExternalView
from atoll.topology.ingress import IngressRoute, ingress_cluster_name
from atoll.topology.matching import InboundRef, match_policies
from atoll.topology.routes import subset_endpoints
from atoll.topology.settings import NO_IDENTITY_RULES, IdentityRules, Permission
from atoll.topology.view import MeshView, sni

__all__ = [
    "EgressView",
    "ExternalRoute",
    "PassThroughRoute",
    "egress_view",
    "external_cluster_name",
    "mesh_has_mtls",
    "passthrough_cluster_name",
]


# An SNI the egress forwards, still encrypted, to other zones' ingresses: the same shape as an ingress
# route (SNI -> a cluster of endpoints), so it is the same type.
PassThroughRoute = IngressRoute


@dataclass(frozen=True, slots=True)
class ExternalRoute:
    """An ExternalService the egress terminates mesh mTLS for, checks permissions of, and calls."""

    mesh: str
    service: str
    sni: str
    cluster: str
    external: ExternalView
    permissions: tuple[Permission, ...] = ()
    identity_rules: IdentityRules = NO_IDENTITY_RULES


@dataclass(frozen=True, slots=True)
class EgressView:
    name: str
    zone: str
    address: str
    port: int
    passthrough: tuple[PassThroughRoute, ...]
    externals: tuple[ExternalRoute, ...]
    conflicts: tuple[str, ...] = ()
    """ExternalServices of the meshes left out (``MeshIndex.conflicts``), prefixed with their mesh."""

    @property
    def meshes(self) -> tuple[str, ...]:
        """Meshes the egress needs an identity in (it terminates mTLS for their external services)."""
        return tuple(sorted({r.mesh for r in self.externals}))


def passthrough_cluster_name(mesh: str, service: str) -> str:
    """``<mesh>:<service>``: named as at the ingress the traffic goes on to."""
    return ingress_cluster_name(mesh, service)


def external_cluster_name(mesh: str, service: str) -> str:
    return f"external:{mesh}:{service}"


def mesh_has_mtls(view: MeshView) -> bool:
    m = view.mesh.spec.mtls
    return m is not None and m.enabled() is not None


def egress_view(name: str, zone_egress: Resource[ZoneEgressSpec], mesh_views: Iterable[MeshView]) -> EgressView:
    spec = zone_egress.spec
    zone = spec.zone or ""
    passthrough: list[PassThroughRoute] = []
    externals: list[ExternalRoute] = []
    conflicts: list[str] = []
    for view in sorted(mesh_views, key=lambda v: v.name):
        conflicts.extend(f"mesh {view.name}: {c}" for c in view.index.conflicts)
        if not mesh_has_mtls(view):
            continue  # cross-zone and egress traffic is mTLS: without it nobody sends any here
        index = view.index
        named = view.names.subsets()
        for service, eps in sorted(index.remote.items()):
            passthrough.append(PassThroughRoute.of(view.name, service, eps))
            subsets = view.route_subsets.get(service, frozenset()) | named.get(service, frozenset())
            for tags in sorted(subsets, key=lambda t: sorted(t.items())):
                if subset := subset_endpoints(eps, tags):  # a route's tag subset: its SNI carries the tags
                    passthrough.append(PassThroughRoute.of(view.name, service, subset, tags))
        local = [ev for s, ev in sorted(index.externals.items()) if ev.zone in (None, zone) and s not in index.remote]
        if not local:
            continue
        matched = match_policies(
            index.policies,
            dataplane=name,
            labels={},
            inbounds=[InboundRef(tags=ev.tags, name=None, port=None) for ev in local],
            outbounds=[],
        )
        for i, ev in enumerate(local):
            externals.append(
                ExternalRoute(
                    mesh=view.name,
                    service=ev.service,
                    sni=sni(ev.service, view.name),
                    cluster=external_cluster_name(view.name, ev.service),
                    external=ev,
                    permissions=matched.permissions[i],
                    identity_rules=matched.identity_rules[i],
                )
            )
    return EgressView(
        name=name,
        zone=zone,
        address=spec.networking.address or "0.0.0.0",
        port=spec.networking.port,
        passthrough=tuple(passthrough),
        externals=tuple(externals),
        conflicts=tuple(conflicts),
    )
