"""Resources of one mesh -> the per-proxy view the generators turn into Envoy config.

Two steps, both pure:

1. ``MeshView`` holds the inputs for one mesh in one zone: the Mesh, its Dataplanes, (later) the
   zone ingresses of other zones and the policies, and the local zone's name. Building it indexes
   the mesh once (``MeshIndex``): the endpoints of every service (``endpoints_by_service``) and the
   protocol of every service (``service_protocol``), so that per-proxy work never rescans the mesh.
2. ``proxy_view(mesh_view, name)`` picks one Dataplane and resolves everything the generators need:
   each inbound (listener address/port, local target, protocol, readiness) and each outbound
   (listen address/port, protocol, endpoints). It only reads the index: cost is proportional to the
   proxy's own inbounds and outbounds.

Rules, as in Kuma:

- inbound listener address is ``inbound.address`` or ``networking.address``; the local target is
  ``serviceAddress`` (default 127.0.0.1) : ``servicePort`` (default the inbound port); an inbound is
  ready unless ``health.ready`` is false or its ``state`` is ``NotReady``/``Ignored``. Inbounds
  without a port are not served (no listener, no endpoint).
- an endpoint of service S is every ready inbound of S in the mesh, at the dataplane's
  ``advertisedAddress``, else ``inbound.address``, else ``networking.address``, and the inbound
  port; its locality zone is its ``kuma.io/zone`` tag, else the local zone.
- when the mesh has mTLS enabled, S also has one endpoint per ZoneIngress of another zone that
  is advertised and lists S (``availableServices`` of this mesh with ``instances > 0``): at the
  ingress's advertisedAddress:advertisedPort, weight = instances, locality = that zone,
  ``ingress=True`` (cross-zone traffic is mTLS routed by SNI at the ingress, so without mTLS remote
  zones are unreachable and left out). Ingresses of the local zone (or with no zone) are ignored;
  leaving out disabled zones is up to the caller.
- the protocol of service S is the ``kuma.io/protocol`` the inbounds of S (ready or not) and the
  remote ``availableServices`` entries of S agree on; ``tcp`` when they disagree or when there are none.

Every view is a frozen value made of tuples and ``Tags``: equal inputs give equal (and hashable)
views, so a caller can compare the new view of a proxy with the old one and skip regeneration.

- the ``Mesh*`` policies (``MeshView.policies``) are ordered once per mesh and matched per proxy
  (``atoll.topology.policies``): each ``OutboundView.policies``/``InboundView.policies`` holds the
  merged ``default`` per policy kind, ``InboundView.permissions`` the MeshTrafficPermission items.

Zone egress and ExternalServices (``MeshView.external_services``, ``MeshView.zone_egresses``):

- with ``routing.zoneEgress`` (needs mTLS) remote-zone endpoints are replaced by one endpoint per local
  zone egress with the remote endpoint's weight and locality (so zone splits and priorities are
  those of direct routing; the egress then picks the remote ingress by SNI, weighted the same way).
  No local egress means no remote endpoints: the mesh said traffic must leave through one.
- an ExternalService is reached directly at its address (``OutboundView.via_egress`` false), or,
  with ``routing.zoneEgress``, over mesh mTLS through the local egress; one pinned to another zone
  (``kuma.io/zone``) through that zone's ingress (listed there with ``externalService: true``) and
  egress, via the local egress too when routing says so. A Dataplane service of the same name wins.

``Endpoint.weight``/``Endpoint.ingress`` carry remote zone-ingress endpoints (weight = instances,
locality = remote zone); ``ProxyView.mtls`` plus ``sni``/``spiffe_id`` carry mTLS.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import InitVar, dataclass, field, replace
from types import MappingProxyType
from typing import Any

from atoll.resources.meta import Resource
from atoll.resources.models.dataplane import DataplaneSpec, Inbound
from atoll.resources.models.external_service import DataSource, ExternalServiceSpec
from atoll.resources.models.mesh import MeshSpec
from atoll.resources.models.zone_egress import ZoneEgressSpec
from atoll.resources.models.zone_ingress import ZoneIngressSpec
from atoll.topology.policies import (
    EMPTY_CONF,
    NO_IDENTITY_RULES,
    Conf,
    IdentityRules,
    InboundRef,
    Permission,
    PolicyEntry,
    match_policies,
    sort_policies,
)
from atoll.topology.tags import SERVICE_TAG, ZONE_TAG, Protocol, Tags, common_protocol, protocol_of

__all__ = [
    "DEFAULT_OUTBOUND_ADDRESS",
    "DEFAULT_SERVICE_ADDRESS",
    "EGRESS_SERVICE",
    "Endpoint",
    "ExternalTls",
    "ExternalView",
    "InboundView",
    "MeshIndex",
    "MeshView",
    "MtlsView",
    "OutboundView",
    "ProxyView",
    "dependencies",
    "dependents",
    "endpoints_by_service",
    "external_view",
    "proxy_view",
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
_NOT_READY_STATES = frozenset(("NotReady", "Ignored"))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address:port that traffic for a service may go to.

    ``dataplane`` names the local Dataplane serving it; remote endpoints (a zone ingress of another
    zone, ``ingress=True``) have none and carry a ``weight`` (that zone's instance count).
    """

    address: str
    port: int
    tags: Tags
    zone: str
    weight: int | None = None
    dataplane: str | None = None
    ingress: bool = False
    egress: bool = False
    """The local zone egress, standing in for a remote zone (``ingress`` is then true too) or for an
    external service."""
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        fields = (self.address, self.port, self.tags, self.zone, self.weight, self.dataplane, self.ingress, self.egress)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:  # computed once: endpoint tuples key the shared ClusterLoadAssignments
        return self._hash

    @property
    def service(self) -> str:
        return self.tags.get(SERVICE_TAG, "")


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
    policies: Conf = EMPTY_CONF
    """Merged ``from[]``(Mesh)/``rules[]`` ``default`` per policy kind (``atoll.topology.policies``)."""
    permissions: tuple[Permission, ...] = ()
    """MeshTrafficPermission ``from[]`` items, least to most specific: a caller gets the last match."""
    identity_rules: IdentityRules = NO_IDENTITY_RULES
    """MeshTrafficPermission ``rules[]``: callers by SPIFFE ID (checked before ``permissions``)."""


@dataclass(frozen=True, slots=True)
class ExternalTls:
    """TLS that a proxy originates to an external service (``networking.tls`` of the ExternalService).

    ``ca_pem``/``ca_file``: where the CA that verifies the server comes from (inline PEM text, or a file
    on the proxy's host); neither means no verification is configured. ``server_name``: the SNI and the
    DNS name the server's certificate must carry (unless ``skip_hostname_verification``)."""

    ca_pem: str | None = None
    ca_file: str | None = None
    ca_secret: str | None = None
    server_name: str | None = None
    allow_renegotiation: bool = False
    skip_hostname_verification: bool = False


@dataclass(frozen=True, slots=True)
class ExternalView:
    """An ExternalService of the mesh: ``host:port`` outside the mesh, its protocol and TLS.

    ``zone`` is its ``kuma.io/zone`` tag: pinned to that zone (reached through that zone's ingress and
    egress), or ``None`` for everywhere."""

    mesh: str
    service: str
    host: str
    port: int
    protocol: Protocol
    tags: Tags
    tls: ExternalTls | None = None
    zone: str | None = None


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
    policies: Conf = EMPTY_CONF
    """Merged ``to[]`` ``default`` per policy kind (``atoll.topology.policies``)."""
    external: ExternalView | None = None
    """Set when ``service`` is an ExternalService of the mesh (and no Dataplane serves it)."""
    via_egress: bool = False
    """External traffic goes over mesh mTLS to a zone egress (the local one, or the pinned zone's
    through its ingress) instead of straight to ``external``'s address."""


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
class MeshIndex:
    """What ``MeshView`` computes once per mesh: dataplanes by name, endpoints and protocol per service."""

    dataplanes: Mapping[str, Resource[DataplaneSpec]]
    endpoints: Mapping[str, tuple[Endpoint, ...]]
    protocols: Mapping[str, Protocol]
    policies: tuple[PolicyEntry, ...] = ()
    remote: Mapping[str, tuple[Endpoint, ...]] = field(default_factory=dict)
    """Per service (and zone-pinned ExternalService): the other zones' ingresses serving it, as they
    are (what a zone egress forwards to), whatever the sidecars use."""
    externals: Mapping[str, ExternalView] = field(default_factory=dict)
    """ExternalServices by service name (those no Dataplane of the mesh also serves)."""
    egresses: tuple[tuple[str, int], ...] = ()
    """address:port of this zone's egresses (advertised or not, in name order)."""
    egress_routing: bool = False
    """The mesh routes remote-zone and external traffic through the zone egress (``routing.zoneEgress``)."""
    conflicts: tuple[str, ...] = ()
    """ExternalServices left out because their ``kuma.io/service`` is taken (by Dataplanes of the mesh,
    or by an ExternalService earlier by name), one message each."""


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
    previous: InitVar[MeshView | None] = None
    """The view this one replaces, if any: endpoint tuples equal to its are reused (not kept), so that
    caches keyed on them hit by identity and a change compares cheaply with what came before."""
    index: MeshIndex = field(init=False, repr=False, compare=False)

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
        index = _build_index(self.mesh.name, ordered, remote, self.zone, egresses, via_egress, externals, mtls)
        if previous is not None:
            before = previous.index.endpoints
            index = replace(
                index,
                endpoints=MappingProxyType(
                    {s: before[s] if before.get(s) == eps else eps for s, eps in index.endpoints.items()}
                ),
            )
        policies = tuple(p for p in self.policies if p.type != "ExternalService")
        object.__setattr__(self, "index", replace(index, policies=sort_policies(policies)))

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
    served = [ib for ib in net.inbound if ib.port is not None]
    matched = match_policies(
        index.policies,
        dataplane=dp.name,
        labels=dp.meta.labels,
        inbounds=[InboundRef(tags=Tags(ib.tags), name=ib.name, port=ib.port) for ib in served],
        outbounds=[(ob.service, ob.tags or {}) for ob in net.outbound],
    )
    inbounds = [
        InboundView(
            service=ib.service,
            protocol=protocol_of(ib.tags),
            address=ib.address or net.address,
            port=ib.port,
            service_address=ib.service_address or DEFAULT_SERVICE_ADDRESS,
            service_port=ib.service_port or ib.port,
            ready=_ready(ib),
            tags=Tags(ib.tags),
            policies=matched.inbounds[i],
            permissions=matched.permissions[i],
            identity_rules=matched.identity_rules[i],
        )
        for i, ib in enumerate(served)
        if ib.port is not None
    ]
    outbounds = []
    for i, ob in enumerate(net.outbound):
        external = index.externals.get(ob.service)
        outbounds.append(
            OutboundView(
                service=ob.service,
                address=ob.address or DEFAULT_OUTBOUND_ADDRESS,
                port=ob.port,
                protocol=index.protocols.get(ob.service, "tcp"),
                endpoints=index.endpoints.get(ob.service, ()),
                tags=Tags(ob.tags or {}),
                policies=matched.outbounds[i],
                external=external,
                via_egress=external is not None and _external_via_egress(index, external, mesh_view.zone),
            )
        )
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
    if not any(ob.service in endpoints for ob in view.outbounds):
        return view
    outbounds = tuple(
        replace(ob, endpoints=endpoints[ob.service]) if ob.service in endpoints else ob for ob in view.outbounds
    )
    return replace(view, outbounds=outbounds)


def dependencies(dataplane: Resource[DataplaneSpec]) -> frozenset[str]:
    """The services ``dataplane`` reaches (its outbounds): a change to one of them changes its config."""
    return frozenset(ob.service for ob in dataplane.spec.networking.outbound)


def services(dataplane: Resource[DataplaneSpec]) -> frozenset[str]:
    """The services ``dataplane`` serves (its inbounds): changing it changes their endpoints."""
    return frozenset(ib.service for ib in dataplane.spec.networking.inbound)


def dependents(mesh_view: MeshView, changed_services: Iterable[str]) -> frozenset[str]:
    """Names of the Dataplanes of the mesh that reach any of ``changed_services``."""
    changed = frozenset(changed_services)
    return frozenset(dp.name for dp in mesh_view.dataplanes if dependencies(dp) & changed)


def sni(service: str, mesh: str, tags: Mapping[str, str] | None = None) -> str:
    """The TLS SNI of ``service`` in ``mesh``: ``backend{mesh=default}``, with any other ``tags``
    (except ``kuma.io/service``) added in key order: ``backend{mesh=default,version=v1}``."""
    extra = {k: v for k, v in (tags or {}).items() if k not in ("kuma.io/service", "mesh")}
    parts = [f"{k}={v}" for k, v in sorted({"mesh": mesh, **extra}.items())]
    return f"{service}{{{','.join(parts)}}}"


def spiffe_id(mesh: str, service: str) -> str:
    """The SPIFFE identity of ``service`` in ``mesh``: ``spiffe://<mesh>/<service>``."""
    return f"spiffe://{mesh}/{service}"


def _ready(ib: Inbound) -> bool:
    if ib.health is not None and not ib.health.ready:
        return False
    return ib.state not in _NOT_READY_STATES


def _mtls(spec: MeshSpec) -> MtlsView | None:
    if spec.mtls is None:
        return None
    backend = spec.mtls.enabled()
    if backend is None:
        return None
    return MtlsView(backend=backend.name, mode=backend.mode or "STRICT")


def _external_via_egress(index: MeshIndex, external: ExternalView, zone: str) -> bool:
    return index.egress_routing or external.zone not in (None, zone)


def _data_source(ds: DataSource | None) -> tuple[str | None, str | None, str | None]:
    if ds is None:
        return None, None, None
    if ds.inline is not None:
        return base64.b64decode(ds.inline).decode(errors="replace"), None, None
    return ds.inline_string, ds.file, ds.secret


def external_view(es: Resource[ExternalServiceSpec]) -> ExternalView:
    """The view of one ExternalService (its address split, its TLS settings resolved)."""
    host, port = es.spec.networking.host_port
    t = es.spec.networking.tls
    tls: ExternalTls | None = None
    if t is not None and t.enabled:
        ca_pem, ca_file, ca_secret = _data_source(t.ca_cert)
        tls = ExternalTls(
            ca_pem=ca_pem,
            ca_file=ca_file,
            ca_secret=ca_secret,
            server_name=t.sni_name,
            allow_renegotiation=bool(t.allow_renegotiation),
            skip_hostname_verification=bool(t.skip_hostname_verification),
        )
    tags = Tags(es.spec.tags)
    return ExternalView(
        mesh=es.mesh or "",
        service=es.spec.service,
        host=host,
        port=port,
        protocol=protocol_of(tags),
        tags=tags,
        tls=tls,
        zone=tags.get(ZONE_TAG) or None,
    )


def _build_index(
    mesh: str,
    dataplanes: tuple[Resource[DataplaneSpec], ...],
    ingresses: tuple[Resource[ZoneIngressSpec], ...],
    zone: str,
    egresses: tuple[tuple[str, int], ...] = (),
    egress_routing: bool = False,
    external_services: tuple[Resource[ExternalServiceSpec], ...] = (),
    mtls: bool = False,
) -> MeshIndex:
    endpoints: defaultdict[str, list[Endpoint]] = defaultdict(list)
    protocols: defaultdict[str, list[Protocol]] = defaultdict(list)
    remote: defaultdict[str, list[Endpoint]] = defaultdict(list)
    remote_externals: set[str] = set()

    def through_egress(ep: Endpoint) -> list[Endpoint]:
        # One endpoint per local egress standing for the remote zone: same weight and locality, so
        # sidecars keep the zone split and priorities of direct routing; the egress splits again by SNI.
        return [replace(ep, address=a, port=p, egress=True) for a, p in egresses]

    for zi in ingresses:
        where = zi.spec.advertised
        if where is None or not zi.spec.zone or zi.spec.zone == zone:
            continue
        for svc in zi.spec.available_services or ():
            service = svc.tags.get(SERVICE_TAG, "")
            if svc.mesh != mesh or not service:
                continue
            if not svc.external_service:
                protocols[service].append(protocol_of(svc.tags))
            if svc.instances <= 0:
                continue
            ep = Endpoint(
                address=where[0],
                port=where[1],
                tags=Tags(svc.tags),
                zone=zi.spec.zone,
                weight=svc.instances,
                ingress=True,
            )
            remote[service].append(ep)
            if svc.external_service:
                remote_externals.add(service)
                continue
            endpoints[service].extend(through_egress(ep) if egress_routing else [ep])
    for dp in dataplanes:
        net = dp.spec.networking
        for ib in net.inbound:
            protocols[ib.service].append(protocol_of(ib.tags))
            if ib.port is None or not _ready(ib):
                continue
            endpoints[ib.service].append(
                Endpoint(
                    address=net.advertised_address or ib.address or net.address,
                    port=ib.port,
                    tags=Tags(ib.tags),
                    zone=ib.tags.get(ZONE_TAG) or zone,
                    dataplane=dp.name,
                )
            )
    internal = set(protocols)  # services of Dataplanes here and of other zones (by their ingresses)
    externals: dict[str, ExternalView] = {}
    owners: dict[str, str] = {}
    conflicts: list[str] = []
    for es in external_services:
        ev = external_view(es)
        # A mesh service of the same name wins; of two ExternalServices, the first by name.
        if ev.service in internal:
            conflicts.append(
                f'ExternalService "{es.name}": kuma.io/service "{ev.service}" is also served by Dataplanes '
                "of the mesh; the mesh service is used"
            )
            continue
        if ev.service in owners:
            conflicts.append(
                f'ExternalService "{es.name}": kuma.io/service "{ev.service}" is already taken by '
                f'ExternalService "{owners[ev.service]}"; that one is used'
            )
            continue
        owners[ev.service] = es.name
        externals[ev.service] = ev
        protocols[ev.service].append(ev.protocol)
        if ev.zone not in (None, zone):
            # Pinned to another zone: through that zone's ingress (which hands it to its egress).
            if not mtls:
                continue
            pinned = [e for e in remote.get(ev.service, ()) if e.zone == ev.zone]
            endpoints[ev.service].extend([x for e in pinned for x in through_egress(e)] if egress_routing else pinned)
        elif egress_routing:
            endpoints[ev.service].extend(
                Endpoint(address=a, port=p, tags=ev.tags, zone=zone, egress=True) for a, p in egresses
            )
        else:
            endpoints[ev.service].append(Endpoint(address=ev.host, port=ev.port, tags=ev.tags, zone=zone))
    return MeshIndex(
        remote=MappingProxyType(
            {
                s: tuple(sorted(eps, key=lambda e: (e.zone, e.address, e.port)))
                for s, eps in remote.items()
                if s not in remote_externals or s in externals
            }
        ),
        externals=MappingProxyType(externals),
        conflicts=tuple(conflicts),
        egresses=egresses,
        egress_routing=egress_routing,
        dataplanes=MappingProxyType({dp.name: dp for dp in dataplanes}),
        endpoints=MappingProxyType(
            {
                s: tuple(sorted(eps, key=lambda e: (e.ingress, e.zone, e.address, e.port, e.dataplane or "")))
                for s, eps in sorted(endpoints.items())
            }
        ),
        protocols=MappingProxyType({s: common_protocol(ps) for s, ps in sorted(protocols.items())}),
    )
