"""Resources of one mesh -> the per-proxy view the generators turn into Envoy config.

Two steps, both pure:

1. ``MeshView`` holds the inputs for one mesh in one zone: the Mesh, its Dataplanes, the zone
   ingresses and egresses, the ExternalServices and the ``Mesh*`` policies, and the local zone's
   name. Building it indexes the mesh once (``atoll.topology.index``: endpoints and protocol of every
   service, ExternalServices) and orders the policies once (``atoll.topology.matching``), so that
   per-proxy work never rescans the mesh.
2. ``proxy_view(mesh_view, name)`` picks one Dataplane and resolves everything the generators need:
   each inbound (listener address/port, local target, protocol, readiness, policy settings and
   permissions) and each outbound (listen address/port, protocol, endpoints, policy settings,
   ExternalService). It only reads the index: cost is proportional to the proxy's own inbounds and
   outbounds (policy settings are folded once per mesh view and shared, see ``matching``).

Rules, as in Kuma:

- inbound listener address is ``inbound.address`` or ``networking.address``; the local target is
  ``serviceAddress`` (default 127.0.0.1) : ``servicePort`` (default the inbound port); an inbound is
  ready unless ``health.ready`` is false or its ``state`` is ``NotReady``/``Ignored``. Inbounds
  without a port are not served (no listener, no endpoint).
- outbound listen address is ``outbound.address`` (default 127.0.0.1); its endpoints and protocol are
  the index's for the service (``tcp`` when unknown).
- an ExternalService is reached directly at its address (``OutboundView.via_egress`` false), or,
  with ``routing.zoneEgress``, over mesh mTLS through the local egress; one pinned to another zone
  (``kuma.io/zone``) through that zone's ingress and egress, via the local egress too when routing
  says so. A Dataplane service of the same name wins.

Every view is a frozen value made of tuples, ``Tags`` and typed settings
(``atoll.topology.settings``): equal inputs give equal (and hashable) views, so a caller can compare
the new view of a proxy with the old one and skip regeneration. ``with_endpoints`` gives the view
that differs only in some outbounds' endpoints (the control plane's fast path).

Routes (``atoll.topology.routes``): an outbound whose MeshHTTPRoute/MeshTCPRoute sends to a tag
subset or to another service carries one ``Split`` per such backend (its endpoints filtered from the
index); ``dependents`` counts the services routes send to, so their endpoint changes reach the proxies.

``Endpoint.weight``/``Endpoint.ingress`` carry remote zone-ingress endpoints (weight = instances,
locality = remote zone); ``ProxyView.mtls`` plus ``sni``/``spiffe_id`` carry mTLS.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import InitVar, dataclass, field, replace
from types import MappingProxyType
from typing import Any

from atoll.resources.meta import Resource
from atoll.resources.models.dataplane import DataplaneSpec
from atoll.resources.models.external_service import ExternalServiceSpec
from atoll.resources.models.mesh import MeshSpec
from atoll.resources.models.zone_egress import ZoneEgressSpec
from atoll.resources.models.zone_ingress import ZoneIngressSpec
from atoll.topology.external import ExternalView
from atoll.topology.index import Endpoint, MeshIndex, build_index, is_ready
from atoll.topology.matching import PolicyEntry, ProxyRefs, match_policies, sort_policies
from atoll.topology.routes import (
    ANY_SERVICE,
    Split,
    route_backends,
    route_subsets,
    routed_backends,
    split_cluster_name,
    subset_endpoints,
)
from atoll.topology.service_names import NO_NAMES, ServiceNames
from atoll.topology.settings import (
    BY_SOURCE_KINDS,
    NO_IDENTITY_RULES,
    NO_SETTINGS,
    IdentityRules,
    Permission,
    PolicySettings,
)
from atoll.topology.settings.fault_injection import serialize_tags, source_tags
from atoll.topology.settings.routes import Backend
from atoll.topology.tags import HTTP_PROTOCOLS, Protocol, Tags, protocol_of

__all__ = [
    "DEFAULT_OUTBOUND_ADDRESS",
    "DEFAULT_SERVICE_ADDRESS",
    "EGRESS_SERVICE",
    "InboundView",
    "MeshView",
    "MtlsView",
    "OutboundView",
    "ProxyView",
    "dependencies",
    "dependents",
    "endpoints_by_service",
    "proxy_view",
    "reaches",
    "service_protocol",
    "services",
    "sni",
    "spiffe_id",
    "with_endpoints",
]

DEFAULT_SERVICE_ADDRESS = "127.0.0.1"
EGRESS_SERVICE = "zone-egress"
"""The service name in a zone egress's certificate: ``spiffe://<mesh>/zone-egress``."""
DEFAULT_OUTBOUND_ADDRESS = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class InboundView:
    """One service this proxy serves: Envoy listens on ``address:port`` and forwards to the local
    application at ``service_address:service_port``."""

    service: str
    protocol: Protocol
    address: str
    port: int
    service_address: str
    service_port: int
    ready: bool
    tags: Tags
    policies: PolicySettings = NO_SETTINGS
    """Settings of the ``from[]`` (Mesh source) and ``rules[]`` items of the policies selecting it."""
    permissions: tuple[Permission, ...] = ()
    """MeshTrafficPermission ``from[]`` items, least to most specific: a caller gets the last match."""
    identity_rules: IdentityRules = NO_IDENTITY_RULES
    """MeshTrafficPermission ``rules[]``: callers by SPIFFE ID (checked before ``permissions``)."""
    strip_caller_tags: bool = False
    """An HTTP inbound of a mesh whose callers send ``x-kuma-tags`` (``OutboundView.caller_tags``):
    the header is removed before the application, whether or not this inbound reads it."""


@dataclass(frozen=True, slots=True)
class OutboundView:
    """One service this proxy reaches: Envoy listens on ``address:port`` and balances over
    ``endpoints``."""

    service: str
    address: str
    port: int
    protocol: Protocol
    endpoints: tuple[Endpoint, ...]
    tags: Tags
    policies: PolicySettings = NO_SETTINGS
    """Settings of the ``to[]`` items of the policies selecting the proxy that match the service."""
    external: ExternalView | None = None
    """Set when ``service`` is an ExternalService of the mesh (and no Dataplane serves it)."""
    via_egress: bool = False
    """External traffic goes over mesh mTLS to a zone egress (the local one, or the pinned zone's
    through its ingress) instead of straight to ``external``'s address."""
    splits: tuple[Split, ...] = ()
    """The clusters its MeshHTTPRoute/MeshTCPRoute backends need besides its own (``topology.routes``)."""
    route_policies: tuple[tuple[str, PolicySettings], ...] = ()
    """(MeshHTTPRoute name, settings) where MeshTimeout/MeshRetry target a route: they configure the
    rules of that route only (``matching``: the outbound's settings with theirs folded last)."""
    caller_tags: str | None = None
    """This proxy's tags as the ``x-kuma-tags`` header of its HTTP requests, set only when some
    MeshFaultInjection of the mesh tells callers apart (so that, without one, every proxy reaching a
    service shares one outbound listener)."""


@dataclass(frozen=True, slots=True)
class MtlsView:
    """The mesh's enabled mTLS backend (``mode`` STRICT or PERMISSIVE)."""

    backend: str
    mode: str


@dataclass(frozen=True, slots=True)
class ProxyView:
    """Everything the generators need to configure one sidecar (or proxyless client)."""

    mesh: str
    name: str
    zone: str
    address: str
    advertised_address: str | None
    inbounds: tuple[InboundView, ...]
    outbounds: tuple[OutboundView, ...]
    mtls: MtlsView | None = None
    admin_port: int | None = None
    locality_aware: bool = False
    """The Mesh's ``routing.localityAwareLoadBalancing``: local zone first, then the others."""
    policies: tuple[tuple[str, str], ...] = ()
    """(type, name) of every policy that selects this proxy or one of its inbounds, in merge order."""

    def sni(self, service: str, tags: Mapping[str, str] | None = None) -> str:
        return sni(service, self.mesh, tags)

    def spiffe_id(self, service: str) -> str:
        return spiffe_id(self.mesh, service)


@dataclass(frozen=True, slots=True)
class MeshView:
    """The inputs for one mesh in one zone. Indexed on construction (see ``MeshIndex``).

    ``zone_ingresses`` are every known ZoneIngress (all zones, all meshes: each lists services of
    several meshes); ``policies`` are the ``Mesh*`` policies of the mesh (ordered once, on construction).
    """

    mesh: Resource[MeshSpec]
    dataplanes: tuple[Resource[DataplaneSpec], ...]
    zone: str
    zone_ingresses: tuple[Resource[ZoneIngressSpec], ...] = ()
    policies: tuple[Resource[Any], ...] = ()
    external_services: tuple[Resource[ExternalServiceSpec], ...] = ()
    zone_egresses: tuple[Resource[ZoneEgressSpec], ...] = ()
    names: ServiceNames = NO_NAMES
    """The mesh's ``<service>.mesh`` and VirtualOutbound names with their VIPs (``service_names``);
    served to the Dataplanes with ``networking.transparentProxying``."""
    previous: InitVar[MeshView | None] = None
    """The view this one replaces, if any: endpoint tuples equal to its are reused (not kept), and so
    are its ordered policies when the policy resources are the same objects, so that caches keyed on
    them (``matching``'s memos) hit by identity and a change compares cheaply with what came before."""
    index: MeshIndex = field(init=False, repr=False, compare=False)
    route_backends: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)
    """Per service, the services MeshHTTPRoutes/MeshTCPRoutes of the mesh send its traffic to."""
    route_subsets: Mapping[str, frozenset[Tags]] = field(init=False, repr=False, compare=False)
    """Per service, the tag subsets routes of the mesh send to (the zone ingress offers each)."""
    outbound_views: dict[tuple[Any, ...], OutboundView] = field(init=False, repr=False, compare=False)
    """``proxy_view``'s memo: the outbound views of this mesh view, shared by the proxies reaching a
    service the same way (lives and dies with the view)."""

    def __post_init__(self, previous: MeshView | None) -> None:
        ordered = tuple(sorted(self.dataplanes, key=lambda r: r.name))
        for dp in ordered:
            if dp.mesh != self.mesh.name:
                raise ValueError(f'Dataplane "{dp.name}" is in mesh "{dp.mesh}", not in "{self.mesh.name}"')
        ingresses = tuple(sorted(self.zone_ingresses, key=lambda r: r.name))
        object.__setattr__(self, "dataplanes", ordered)
        object.__setattr__(self, "zone_ingresses", ingresses)
        mtls = _mtls(self.mesh.spec) is not None
        remote = ingresses if mtls else ()
        egresses = tuple(
            (eg.spec.networking.address, eg.spec.networking.port)
            for eg in sorted(self.zone_egresses, key=lambda r: r.name)
            if eg.spec.networking.address and eg.spec.zone in (None, "", self.zone)
        )
        routing = self.mesh.spec.routing
        via_egress = mtls and bool(routing is not None and routing.zone_egress)
        externals = tuple(
            sorted((es for es in self.external_services if es.mesh == self.mesh.name), key=lambda r: r.name)
        )
        index = build_index(self.mesh.name, ordered, remote, self.zone, egresses, via_egress, externals, mtls)
        if previous is not None:
            before = previous.index.endpoints
            index = replace(
                index,
                endpoints=MappingProxyType(
                    {s: before[s] if before.get(s) == eps else eps for s, eps in index.endpoints.items()}
                ),
            )
        if previous is not None and _same_objects(previous.policies, self.policies):
            ordered_policies = previous.index.policies  # one tuple while unchanged: matching memos hit
        else:
            ordered_policies = sort_policies(p for p in self.policies if p.type != "ExternalService")
        object.__setattr__(
            self, "index", replace(index, policies=ordered_policies, tag_callers=_tags_callers(ordered_policies))
        )
        object.__setattr__(self, "route_backends", route_backends(ordered_policies))
        object.__setattr__(self, "route_subsets", route_subsets(ordered_policies))
        object.__setattr__(self, "outbound_views", {})

    @property
    def name(self) -> str:
        return self.mesh.name


def endpoints_by_service(mesh_view: MeshView) -> Mapping[str, tuple[Endpoint, ...]]:
    """The endpoints of every service of the mesh (computed once, when ``mesh_view`` was built)."""
    return mesh_view.index.endpoints


def service_protocol(mesh_view: MeshView, service: str) -> Protocol:
    """The protocol of ``service`` as its inbounds declare it; ``tcp`` if they disagree or there are none."""
    return mesh_view.index.protocols.get(service, "tcp")


def proxy_view(mesh_view: MeshView, dataplane_name: str) -> ProxyView:
    """The view of Dataplane ``dataplane_name``; ``KeyError`` if the mesh has no such Dataplane."""
    index = mesh_view.index
    try:
        dp = index.dataplanes[dataplane_name]
    except KeyError:
        raise KeyError(f'no Dataplane "{dataplane_name}" in mesh "{mesh_view.name}"') from None
    net = dp.spec.networking
    refs = ProxyRefs.of(dp)
    served = refs.served
    matched = match_policies(
        index.policies, dataplane=dp.name, labels=dp.meta.labels, inbounds=refs.inbounds, outbounds=refs.outbounds
    )
    inbounds = [
        InboundView(
            service=ib.service,
            protocol=protocol_of(ib.tags),
            address=ib.address or net.address,
            port=ib.port,
            service_address=ib.service_address or DEFAULT_SERVICE_ADDRESS,
            service_port=ib.service_port or ib.port,
            ready=is_ready(ib),
            tags=Tags(ib.tags),
            policies=matched.inbounds[i],
            permissions=matched.permissions[i],
            identity_rules=matched.identity_rules[i],
            strip_caller_tags=index.tag_callers and protocol_of(ib.tags) in HTTP_PROTOCOLS,
        )
        for i, ib in enumerate(served)
        if ib.port is not None
    ]
    outbounds = []
    caller = serialize_tags(source_tags(ib.tags for ib in net.inbound)) if index.tag_callers else None
    shared = mesh_view.outbound_views
    for i, ob in enumerate(net.outbound):
        # Proxies reaching a service the same way share one OutboundView per mesh view (a value: equal
        # inputs, equal view), so a mesh-wide change builds each once and generator memos hit by identity.
        service, address = ob.service, ob.address or DEFAULT_OUTBOUND_ADDRESS
        settings, routes = matched.outbounds[i], matched.routes[i]
        key = (service, address, ob.port, tuple((ob.tags or {}).items()), settings, routes, caller)
        view = shared.get(key)
        if view is None:
            external = index.externals.get(service)
            protocol = index.protocols.get(service, "tcp")
            view = shared[key] = OutboundView(
                service=service,
                address=address,
                port=ob.port,
                protocol=protocol,
                endpoints=index.endpoints.get(service, ()),
                tags=Tags(ob.tags or {}),
                policies=settings,
                external=external,
                via_egress=external is not None and _external_via_egress(index, external, mesh_view.zone),
                splits=_splits(index, mesh_view.zone, service, routed_backends(settings, protocol in HTTP_PROTOCOLS)),
                route_policies=routes,
                caller_tags=caller if protocol in HTTP_PROTOCOLS else None,
            )
        outbounds.append(view)
    return ProxyView(
        mesh=mesh_view.name,
        name=dp.name,
        zone=mesh_view.zone,
        address=net.address,
        advertised_address=net.advertised_address,
        inbounds=tuple(sorted(inbounds, key=lambda i: (i.address, i.port))),
        outbounds=tuple(sorted(outbounds, key=lambda o: (o.address, o.port))),
        mtls=_mtls(mesh_view.mesh.spec),
        admin_port=net.admin.port if net.admin else None,
        locality_aware=bool(mesh_view.mesh.spec.routing and mesh_view.mesh.spec.routing.locality_aware_load_balancing),
        policies=matched.names,
    )


def with_endpoints(view: ProxyView, endpoints: Mapping[str, tuple[Endpoint, ...]]) -> ProxyView:
    """``view`` with the endpoints of its outbounds to the services in ``endpoints`` replaced: what
    ``proxy_view`` builds when nothing but those services' endpoints changed. Outbounds to other
    services stay the same objects; ``view`` itself is returned when it reaches none of them."""
    if not any(reaches(ob, endpoints) for ob in view.outbounds):
        return view
    outbounds = tuple(_with_endpoints(ob, endpoints) if reaches(ob, endpoints) else ob for ob in view.outbounds)
    return replace(view, outbounds=outbounds)


def _with_endpoints(ob: OutboundView, endpoints: Mapping[str, tuple[Endpoint, ...]]) -> OutboundView:
    splits = tuple(
        replace(s, endpoints=subset_endpoints(endpoints[s.service], s.tags)) if s.service in endpoints else s
        for s in ob.splits
    )
    return replace(ob, endpoints=endpoints.get(ob.service, ob.endpoints), splits=splits)


def reaches(ob: OutboundView, services: Container[str]) -> bool:
    """Whether ``ob``'s clusters hold endpoints of any of ``services``: its own service's, or those of
    its routes' backends (no allocation: the endpoint fast path asks this of every outbound)."""
    return ob.service in services or any(s.service in services for s in ob.splits)


def _splits(index: MeshIndex, zone: str, service: str, backends: Iterable[Backend]) -> tuple[Split, ...]:
    """The split clusters of an outbound of ``service`` routed to ``backends`` (its own cluster aside)."""
    out: dict[str, Split] = {}
    for b in backends:
        external = index.externals.get(b.service)
        tags = b.tags if external is None else Tags({})  # an ExternalService has no subsets
        name = split_cluster_name(b.service, tags)
        if name == service or name in out or b.weight <= 0:
            continue
        out[name] = Split(
            name=name,
            service=b.service,
            tags=tags,
            endpoints=subset_endpoints(index.endpoints.get(b.service, ()), tags),
            protocol=index.protocols.get(b.service, "tcp"),
            external=external,
            via_egress=external is not None and _external_via_egress(index, external, zone),
        )
    return tuple(out[n] for n in sorted(out))


def dependencies(dataplane: Resource[DataplaneSpec]) -> frozenset[str]:
    """The services ``dataplane`` reaches (its outbounds): a change to one of them changes its config."""
    return frozenset(ob.service for ob in dataplane.spec.networking.outbound)


def services(dataplane: Resource[DataplaneSpec]) -> frozenset[str]:
    """The services ``dataplane`` serves (its inbounds): changing it changes their endpoints."""
    return frozenset(ib.service for ib in dataplane.spec.networking.inbound)


def dependents(mesh_view: MeshView, changed_services: Iterable[str]) -> frozenset[str]:
    """Names of the Dataplanes of the mesh that reach any of ``changed_services``."""
    changed = frozenset(changed_services)
    routed = frozenset(to for to, backends in mesh_view.route_backends.items() if backends & changed)
    if ANY_SERVICE in routed:  # a route of every outbound sends to a changed service
        return frozenset(dp.name for dp in mesh_view.dataplanes if dp.spec.networking.outbound)
    reach = changed | routed
    return frozenset(dp.name for dp in mesh_view.dataplanes if dependencies(dp) & reach)


def sni(service: str, mesh: str, tags: Mapping[str, str] | None = None) -> str:
    """The TLS SNI of ``service`` in ``mesh``: ``backend{mesh=default}``, with any other ``tags``
    (except ``kuma.io/service``) added in key order: ``backend{mesh=default,version=v1}``."""
    extra = {k: v for k, v in (tags or {}).items() if k not in ("kuma.io/service", "mesh")}
    parts = [f"{k}={v}" for k, v in sorted({"mesh": mesh, **extra}.items())]
    return f"{service}{{{','.join(parts)}}}"


def spiffe_id(mesh: str, service: str) -> str:
    """The SPIFFE identity of ``service`` in ``mesh``: ``spiffe://<mesh>/<service>``."""
    return f"spiffe://{mesh}/{service}"


def _same_objects(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _mtls(spec: MeshSpec) -> MtlsView | None:
    if spec.mtls is None:
        return None
    backend = spec.mtls.enabled()
    if backend is None:
        return None
    return MtlsView(backend=backend.name, mode=backend.mode or "STRICT")


def _tags_callers(policies: Iterable[PolicyEntry]) -> bool:
    """Whether a policy whose settings depend on the caller names a source other than Mesh."""
    return any(
        (item.get("targetRef") or {}).get("kind", "Mesh") != "Mesh"
        for p in policies
        if p.type in BY_SOURCE_KINDS
        for item in p.spec.get("from") or ()
    )


def _external_via_egress(index: MeshIndex, external: ExternalView, zone: str) -> bool:
    return index.egress_routing or external.zone not in (None, zone)
