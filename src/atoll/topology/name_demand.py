"""Which names a mesh wants in one zone, before they have VIPs: ``<service>.mesh``, ExternalService
hosts and rendered VirtualOutbounds (pure).

``destinations(...)`` lists what names are rendered for, as ``Destination`` values (service, tags,
port, kind): every inbound of the mesh's Dataplanes here (not ``Ignored``, with a port), every
service other zones' ingresses list for the mesh (``availableServices``), every ExternalService.
``name_demand(destinations, virtual_outbounds)`` turns them into ``NameDemand``: the wanted names
and the problems found rendering them. ``NameDemand.table(vips)`` is the ``ServiceNames`` table once
the allocator has given hostnames their VIPs (a name without a VIP yet is left out).

Rules, as in Kuma (``pkg/dns/vips``, ``pkg/xds/topology`` VIP outbounds, the VirtualOutbound docs):

- every service gets ``<service>.mesh`` on port 80 and on its inbound ports (an ExternalService on
  its port); a service whose name has ``_`` also answers to the name with ``.`` for ``_``
  (``backend_default_svc_80.mesh`` and ``backend.default.svc.80.mesh``), sharing the VIP. A service
  whose ``<service>.mesh`` is not a DNS name gets no name (reported);
- an ExternalService whose host is a DNS name (not an IP) gets that host as a name too, on its port
  and 80, unless ``networking.disableHostDNSEntry``;
- every VirtualOutbound whose selectors match a destination's tags renders ``conf.host``/``conf.port``
  from them (ExternalServices: from their ``kuma.io/service`` alone, as Kuma does); one name per
  distinct hostname and tag values, narrowed to the endpoints carrying the parameters' tag values
  (``VirtualName.tags``, ``kuma.io/service`` aside). A destination missing a parameter's tag renders
  nothing; a render that is not a DNS name or a port is skipped and reported;
- a (hostname, port) claimed twice for different traffic keeps the first claim: service names, then
  ExternalService hosts, then VirtualOutbounds by name; the others are reported.

Selection is by destination, not by caller: the table is the same for every transparent-proxied
proxy of the mesh. Equal inputs give an equal ``NameDemand``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from atoll.resources.meta import Resource
from atoll.resources.models.dataplane import DataplaneSpec
from atoll.resources.models.external_service import ExternalServiceSpec
from atoll.resources.models.virtual_outbound import VirtualOutboundSpec, is_dns_name
from atoll.resources.models.zone_ingress import ZoneIngressSpec
from atoll.topology.service_names import SERVICE_NAME_PORT, ServiceNames, VirtualName
from atoll.topology.tags import SERVICE_TAG, Tags

__all__ = [
    "MESH_DOMAIN",
    "Destination",
    "NameDemand",
    "WantedName",
    "dataplane_destinations",
    "destinations",
    "name_demand",
]

MESH_DOMAIN = "mesh"
"""The DNS domain of service names: ``<service>.mesh``."""

_SERVICE = "service"
_INBOUND, _REMOTE, _EXTERNAL = "inbound", "remote", "external"


@dataclass(frozen=True, slots=True)
class Destination:
    """Something names are rendered for: a service with the tags of one of its instances (or of a
    remote zone's entry, or an ExternalService), ``port`` its inbound/ExternalService port if known."""

    service: str
    tags: Tags
    port: int | None
    kind: str
    host: str | None = None
    """An ExternalService's host, when it wants a name of its own."""
    source: str = ""
    """An ExternalService's name (for ``origin``)."""
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        fields = (self.service, self.tags, self.port, self.kind, self.host, self.source)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:  # computed once: a mesh's destinations are a set rebuilt per change
        return self._hash


@dataclass(frozen=True, slots=True)
class WantedName:
    """A hostname to serve once it has a VIP (``alias_of``: the hostname whose VIP it shares)."""

    hostname: str
    ports: tuple[int, ...]
    service: str
    tags: Tags
    origin: str
    alias_of: str | None = None

    @property
    def key(self) -> str:
        """The hostname whose VIP this name uses."""
        return self.alias_of or self.hostname


@dataclass(frozen=True, slots=True)
class NameDemand:
    """The names a mesh wants, sorted, and what could not be rendered (module docstring)."""

    names: tuple[WantedName, ...] = ()
    problems: tuple[str, ...] = ()

    def hostnames(self) -> frozenset[str]:
        """The hostnames that need a VIP of their own (aliases share their primary's)."""
        return frozenset(n.hostname for n in self.names if n.alias_of is None)

    def table(self, vips: Mapping[str, str]) -> ServiceNames:
        """The served table: each wanted name whose hostname has a VIP in ``vips``."""
        return ServiceNames(
            tuple(
                VirtualName(n.hostname, vip, n.ports, n.service, n.tags, n.origin)
                for n in self.names
                if (vip := vips.get(n.key)) is not None
            )
        )


_NO_TAGS = Tags()


def dataplane_destinations(
    dp: Resource[DataplaneSpec], intern: dict[Destination, Destination] | None = None
) -> tuple[Destination, ...]:
    """The destinations of one Dataplane: its inbounds that are not ``Ignored`` and have a port.
    With ``intern``, equal destinations of different Dataplanes are one object (a set of them then
    compares by identity, which makes rebuilding a mesh's set cheap)."""
    out = tuple(
        Destination(ib.service, Tags(ib.tags), ib.port, _INBOUND)
        for ib in dp.spec.networking.inbound
        if ib.port is not None and ib.state != "Ignored" and ib.tags.get(SERVICE_TAG)
    )
    return out if intern is None else tuple(intern.setdefault(d, d) for d in out)


def destinations(
    mesh: str,
    zone: str,
    dataplanes: Iterable[tuple[Destination, ...]],
    zone_ingresses: Iterable[Resource[ZoneIngressSpec]],
    external_services: Iterable[Resource[ExternalServiceSpec]],
) -> frozenset[Destination]:
    """Every destination of ``mesh`` seen from ``zone`` (``dataplanes``: ``dataplane_destinations``
    of each local Dataplane, so a caller may keep them per Dataplane)."""
    out: set[Destination] = set()
    for d in dataplanes:
        out.update(d)
    for zi in zone_ingresses:
        if zi.spec.zone in (None, "", zone):
            continue
        for av in zi.spec.available_services or ():
            if av.mesh == mesh and av.tags.get(SERVICE_TAG):
                out.add(Destination(av.tags[SERVICE_TAG], Tags(av.tags), None, _REMOTE))
    for es in external_services:
        if es.mesh != mesh:
            continue
        host, port = es.spec.networking.host_port
        wants_host = not es.spec.networking.disable_host_dns_entry and _is_hostname(host)
        out.add(
            Destination(
                es.spec.service,
                Tags({SERVICE_TAG: es.spec.service}),
                port,
                _EXTERNAL,
                host if wants_host else None,
                es.name,
            )
        )
    return frozenset(out)


def _is_hostname(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return is_dns_name(host)
    return False


class _Names:
    """Wanted names being collected: (hostname, service, tags) -> ports, first claim of a port wins."""

    def __init__(self) -> None:
        self.ports: dict[tuple[str, str, Tags, str, str | None], set[int]] = {}
        self.claims: dict[tuple[str, int], tuple[str, Tags, str]] = {}
        self.vip_of: dict[str, str] = {}  # hostname -> the hostname whose VIP it uses
        self.problems: list[str] = []

    def add(self, hostname: str, port: int, service: str, tags: Tags, origin: str, alias_of: str | None = None) -> None:
        vip_of = self.vip_of.setdefault(hostname, alias_of or hostname)
        if vip_of != (alias_of or hostname):  # one hostname, one VIP: an alias never shadows a name
            self.problems.append(f"{origin}: {hostname} is already the name of {vip_of}'s VIP")
            return
        claim = (service, tags, origin)
        held = self.claims.setdefault((hostname, port), claim)
        if held[:2] != claim[:2]:
            self.problems.append(
                f"{origin}: {hostname}:{port} is already {held[2]}'s name for {_describe(held[0], held[1])}"
            )
            return
        self.ports.setdefault((hostname, service, tags, held[2], alias_of), set()).add(port)

    def done(self) -> NameDemand:
        names = [
            WantedName(host, tuple(sorted(ports)), service, tags, origin, alias)
            for (host, service, tags, origin, alias), ports in self.ports.items()
        ]
        names.sort(key=lambda n: (n.hostname, n.ports, n.service, sorted(n.tags.items())))
        return NameDemand(tuple(names), tuple(sorted(set(self.problems))))


def _describe(service: str, tags: Tags) -> str:
    extra = ",".join(f"{k}={v}" for k, v in tags.items())
    return f"{service}{{{extra}}}" if extra else service


def name_demand(dests: Iterable[Destination], virtual_outbounds: Iterable[Resource[VirtualOutboundSpec]]) -> NameDemand:
    """The names wanted for ``dests`` (module docstring for the rules)."""
    ordered = sorted(dests, key=lambda d: (d.service, d.kind, sorted(d.tags.items()), d.port or 0, d.host or ""))
    names = _Names()
    _service_names(names, ordered)
    for d in ordered:
        if d.host is not None:
            origin = f"ExternalService/{d.source}"
            for port in sorted({d.port or SERVICE_NAME_PORT, SERVICE_NAME_PORT}):
                names.add(d.host, port, d.service, _NO_TAGS, origin)
    vos = sorted(virtual_outbounds, key=lambda r: r.name)
    for vo in vos:
        _render(names, vo, ordered)
    return names.done()


def _service_names(names: _Names, dests: list[Destination]) -> None:
    ports: dict[str, set[int]] = {}
    for d in dests:
        p = ports.setdefault(d.service, {SERVICE_NAME_PORT})
        if d.port is not None:
            p.add(d.port)
    for service, service_ports in sorted(ports.items()):
        hostname = f"{service}.{MESH_DOMAIN}"
        if not is_dns_name(hostname):
            names.problems.append(f'service "{service}": "{hostname}" is not a DNS name, it gets no VIP')
            continue
        dotted = f"{service.replace('_', '.')}.{MESH_DOMAIN}"
        for port in sorted(service_ports):
            names.add(hostname, port, service, _NO_TAGS, _SERVICE)
            if dotted != hostname and is_dns_name(dotted):
                names.add(dotted, port, service, _NO_TAGS, _SERVICE, alias_of=hostname)


def _render(names: _Names, vo: Resource[VirtualOutboundSpec], dests: list[Destination]) -> None:
    spec = vo.spec
    origin = f"VirtualOutbound/{vo.name}"
    seen: set[Tags] = set()
    for d in dests:
        tags = Tags({SERVICE_TAG: d.service}) if d.kind == _EXTERNAL else d.tags
        if spec.selects(tags) is None:
            continue
        values = spec.parameter_tags(tags)
        if values is None:
            continue  # the destination lacks a parameter's tag: nothing to render for it
        narrowed = Tags(values)
        if narrowed in seen:
            continue
        seen.add(narrowed)
        host, why = spec.render_host(tags)
        port, why_port = spec.render_port(tags) if host is not None else (None, "")
        if host is None or port is None:
            what = _describe(d.service, narrowed.without(SERVICE_TAG))
            names.problems.append(f"{origin}: skipped for {what}: {why or why_port}")
            continue
        names.add(host, port, d.service, narrowed.without(SERVICE_TAG), origin)
