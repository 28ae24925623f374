"""The index of one mesh: endpoints and protocol of every service, built once per ``MeshView`` (pure).

``build_index`` scans the mesh's Dataplanes, the other zones' ZoneIngresses and the ExternalServices
once, so that per-proxy work (``atoll.topology.view.proxy_view``) only looks things up. Rules, as in
Kuma:

- an endpoint of service S is every ready inbound of S in the mesh (``is_ready``: not
  ``health.ready: false``, not ``NotReady``/``Ignored``, has a port), at the dataplane's
  ``advertisedAddress``, else ``inbound.address``, else ``networking.address``, and the inbound
  port; its locality zone is its ``kuma.io/zone`` tag, else the local zone.
- when the mesh has mTLS enabled, S also has one endpoint per ZoneIngress of another zone that
  is advertised and lists S (``availableServices`` of this mesh with ``instances > 0``): at the
  ingress's advertisedAddress:advertisedPort, weight = instances, locality = that zone,
  ``ingress=True`` (cross-zone traffic is mTLS routed by SNI at the ingress, so without mTLS remote
  zones are unreachable and left out). Ingresses of the local zone (or with no zone) are ignored;
  leaving out disabled zones is up to the caller.
- with ``routing.zoneEgress`` (needs mTLS) remote-zone endpoints are replaced by one endpoint per local
  zone egress with the remote endpoint's weight and locality (so zone splits and priorities are
  those of direct routing; the egress then picks the remote ingress by SNI, weighted the same way).
  No local egress means no remote endpoints: the mesh said traffic must leave through one.
- an ExternalService is reached directly at its address, or, with ``routing.zoneEgress``, through
  the local egresses; one pinned to another zone (``kuma.io/zone``) through that zone's ingress (and
  the local egresses when routing says so). A Dataplane service of the same name wins; of two
  ExternalServices of one name, the first by name (the others are reported in ``conflicts``).
- the protocol of service S is the ``kuma.io/protocol`` the inbounds of S (ready or not), the
  remote ``availableServices`` entries of S and its ExternalService agree on; ``tcp`` when they
  disagree or when there are none.

Endpoint tuples are sorted (locals before ingresses, then zone, address, port), so equal meshes give
equal tuples; ``Endpoint`` caches its hash, since endpoint tuples key shared ClusterLoadAssignments.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from atoll.resources.meta import Resource
from atoll.resources.models.dataplane import DataplaneSpec, Inbound
from atoll.resources.models.external_service import ExternalServiceSpec
from atoll.resources.models.zone_ingress import ZoneIngressSpec
from atoll.topology.external import ExternalView, external_view
from atoll.topology.matching import PolicyEntry
from atoll.topology.tags import SERVICE_TAG, ZONE_TAG, Protocol, Tags, common_protocol, protocol_of

__all__ = ["Endpoint", "MeshIndex", "build_index", "is_ready"]

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
    tag_callers: bool = False
    """Some MeshFaultInjection of the mesh tells callers apart (a ``from[]`` source other than Mesh):
    sidecars then send their tags on HTTP outbounds (``OutboundView.caller_tags``)."""
    conflicts: tuple[str, ...] = ()
    """ExternalServices left out because their ``kuma.io/service`` is taken (by Dataplanes of the mesh,
    or by an ExternalService earlier by name), one message each."""


def is_ready(ib: Inbound) -> bool:
    """Whether inbound ``ib`` takes traffic (health and state; its port is checked by the callers)."""
    if ib.health is not None and not ib.health.ready:
        return False
    return ib.state not in _NOT_READY_STATES


class _Builder:
    """Accumulates endpoints and protocols per service while ``build_index`` scans the mesh."""

    def __init__(
        self, mesh: str, zone: str, egresses: tuple[tuple[str, int], ...], egress_routing: bool, mtls: bool
    ) -> None:
        self.mesh, self.zone, self.egresses, self.egress_routing, self.mtls = mesh, zone, egresses, egress_routing, mtls
        self.endpoints: defaultdict[str, list[Endpoint]] = defaultdict(list)
        self.protocols: defaultdict[str, list[Protocol]] = defaultdict(list)
        self.remote: defaultdict[str, list[Endpoint]] = defaultdict(list)
        self.remote_externals: set[str] = set()
        self.externals: dict[str, ExternalView] = {}
        self.conflicts: list[str] = []

    def through_egress(self, ep: Endpoint) -> list[Endpoint]:
        # One endpoint per local egress standing for the remote zone: same weight and locality, so
        # sidecars keep the zone split and priorities of direct routing; the egress splits again by SNI.
        return [replace(ep, address=a, port=p, egress=True) for a, p in self.egresses]

    def add_ingresses(self, ingresses: tuple[Resource[ZoneIngressSpec], ...]) -> None:
        for zi in ingresses:
            where = zi.spec.advertised
            if where is None or not zi.spec.zone or zi.spec.zone == self.zone:
                continue
            for svc in zi.spec.available_services or ():
                service = svc.tags.get(SERVICE_TAG, "")
                if svc.mesh != self.mesh or not service:
                    continue
                if not svc.external_service:
                    self.protocols[service].append(protocol_of(svc.tags))
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
                self.remote[service].append(ep)
                if svc.external_service:
                    self.remote_externals.add(service)
                    continue
                self.endpoints[service].extend(self.through_egress(ep) if self.egress_routing else [ep])

    def add_dataplanes(self, dataplanes: tuple[Resource[DataplaneSpec], ...]) -> None:
        for dp in dataplanes:
            net = dp.spec.networking
            for ib in net.inbound:
                self.protocols[ib.service].append(protocol_of(ib.tags))
                if ib.port is None or not is_ready(ib):
                    continue
                self.endpoints[ib.service].append(
                    Endpoint(
                        address=net.advertised_address or ib.address or net.address,
                        port=ib.port,
                        tags=Tags(ib.tags),
                        zone=ib.tags.get(ZONE_TAG) or self.zone,
                        dataplane=dp.name,
                    )
                )

    def add_externals(self, external_services: tuple[Resource[ExternalServiceSpec], ...]) -> None:
        internal = set(self.protocols)  # services of Dataplanes here and of other zones (by their ingresses)
        owners: dict[str, str] = {}
        for es in external_services:
            ev = external_view(es)
            # A mesh service of the same name wins; of two ExternalServices, the first by name.
            if ev.service in internal:
                self.conflicts.append(
                    f'ExternalService "{es.name}": kuma.io/service "{ev.service}" is also served by Dataplanes '
                    "of the mesh; the mesh service is used"
                )
                continue
            if ev.service in owners:
                self.conflicts.append(
                    f'ExternalService "{es.name}": kuma.io/service "{ev.service}" is already taken by '
                    f'ExternalService "{owners[ev.service]}"; that one is used'
                )
                continue
            owners[ev.service] = es.name
            self.externals[ev.service] = ev
            self.protocols[ev.service].append(ev.protocol)
            eps = self._external_endpoints(ev)
            if eps is not None:
                self.endpoints[ev.service].extend(eps)

    def _external_endpoints(self, ev: ExternalView) -> list[Endpoint] | None:
        """Where proxies send ``ev``'s traffic; None (not even an empty list) when it is pinned to
        another zone and the mesh has no mTLS to get there."""
        if ev.zone not in (None, self.zone):
            # Pinned to another zone: through that zone's ingress (which hands it to its egress).
            if not self.mtls:
                return None
            pinned = [e for e in self.remote.get(ev.service, ()) if e.zone == ev.zone]
            return [x for e in pinned for x in self.through_egress(e)] if self.egress_routing else pinned
        if self.egress_routing:
            return [Endpoint(address=a, port=p, tags=ev.tags, zone=self.zone, egress=True) for a, p in self.egresses]
        return [Endpoint(address=ev.host, port=ev.port, tags=ev.tags, zone=self.zone)]

    def index(self, dataplanes: tuple[Resource[DataplaneSpec], ...]) -> MeshIndex:
        return MeshIndex(
            remote=MappingProxyType(
                {
                    s: tuple(sorted(eps, key=lambda e: (e.zone, e.address, e.port)))
                    for s, eps in self.remote.items()
                    if s not in self.remote_externals or s in self.externals
                }
            ),
            externals=MappingProxyType(self.externals),
            conflicts=tuple(self.conflicts),
            egresses=self.egresses,
            egress_routing=self.egress_routing,
            dataplanes=MappingProxyType({dp.name: dp for dp in dataplanes}),
            endpoints=MappingProxyType(
                {
                    s: tuple(sorted(eps, key=lambda e: (e.ingress, e.zone, e.address, e.port, e.dataplane or "")))
                    for s, eps in sorted(self.endpoints.items())
                }
            ),
            protocols=MappingProxyType({s: common_protocol(ps) for s, ps in sorted(self.protocols.items())}),
        )


def build_index(
    mesh: str,
    dataplanes: tuple[Resource[DataplaneSpec], ...],
    ingresses: tuple[Resource[ZoneIngressSpec], ...],
    zone: str,
    egresses: tuple[tuple[str, int], ...] = (),
    egress_routing: bool = False,
    external_services: tuple[Resource[ExternalServiceSpec], ...] = (),
    mtls: bool = False,
) -> MeshIndex:
    """The index of ``mesh`` in ``zone`` (see the module docstring). ``ingresses`` are the other zones'
    ingresses to use (none without mTLS), ``egresses`` this zone's egresses (address, port)."""
    builder = _Builder(mesh, zone, egresses, egress_routing, mtls)
    builder.add_ingresses(ingresses)
    builder.add_dataplanes(dataplanes)
    builder.add_externals(external_services)
    return builder.index(dataplanes)
