"""What a transparent-proxied Dataplane gets besides its explicit outbounds (pure).

A Dataplane with ``networking.transparentProxying`` has its traffic captured by iptables
(``atoll dp install transparent-proxy``). From the mesh's names table (``MeshView.names``, see
``service_names``) it gets:

- one captured outbound per (name, port): Envoy's listener at ``VIP:port``, not bound (the outbound
  capture listener hands it the connections whose original destination it is), balancing over the
  service's endpoints, narrowed to the name's tags for a VirtualOutbound name (``Target.subset``),
  in this zone or another (the index's ingress endpoints carry the remote tag sets);
- ``TransparentView``: the capture ports, whether unknown destinations pass through (the Mesh's
  ``networking.outbound.passthrough``, on unless false, as in Kuma) and the DNS table (hostname ->
  VIP) its DNS listener answers.

``targets(names, reachable)`` turns the table into the list of ``Target`` once per (table,
reachable services) and shares it between every transparent-proxied proxy of the mesh (memoized
on the table's value); per proxy, ``proxy_view`` only drops the targets its explicit outbounds
already listen on (explicit wins) and matches policies on the rest, so a proxy's cost is
proportional to the table. ``reachable`` is ``transparentProxying.reachableServices``: when set,
only names of those services are served (as in Kuma).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from atoll.addresses import TPROXY_DNS_PORT
from atoll.resources.models.dataplane import TransparentProxying
from atoll.resources.models.mesh import MeshSpec
from atoll.topology.service_names import ServiceNames
from atoll.topology.tags import Tags

__all__ = [
    "DEFAULT_INBOUND_CAPTURE_PORT",
    "DEFAULT_OUTBOUND_CAPTURE_PORT",
    "DNS_TTL",
    "Target",
    "TransparentView",
    "targets",
    "transparent_view",
]

DEFAULT_OUTBOUND_CAPTURE_PORT = 15001
DEFAULT_INBOUND_CAPTURE_PORT = 15006
DNS_TTL = 30
"""Seconds a DNS answer for a mesh name may be cached: the lowest Envoy's DNS filter accepts (VIPs are
stable, so a longer cache only delays a name's removal)."""

_SERVICE_TAG = "kuma.io/service"


@dataclass(frozen=True, slots=True)
class Target:
    """One captured outbound: ``vip:port`` goes to ``service`` (only instances with ``subset`` when set)."""

    service: str
    vip: str
    port: int
    subset: Tags
    match_tags: Mapping[str, str]
    """What policy matching sees: the service tag plus the subset's tags."""


@dataclass(frozen=True, slots=True)
class TransparentView:
    """The capture and DNS settings of a transparent-proxied sidecar."""

    outbound_port: int
    inbound_port: int
    passthrough: bool
    dns: tuple[tuple[str, str], ...]
    """(hostname, VIP), sorted by hostname."""
    dns_port: int = TPROXY_DNS_PORT
    dns_ttl: int = DNS_TTL


def transparent_view(tp: TransparentProxying, mesh: MeshSpec, names: ServiceNames) -> TransparentView:
    net = mesh.networking
    passthrough = not (net is not None and net.outbound is not None and net.outbound.passthrough is False)
    return TransparentView(
        outbound_port=tp.redirect_port_outbound or DEFAULT_OUTBOUND_CAPTURE_PORT,
        inbound_port=tp.redirect_port_inbound or DEFAULT_INBOUND_CAPTURE_PORT,
        passthrough=passthrough,
        dns=_dns(names, _reachable(tp)),
    )


def _reachable(tp: TransparentProxying) -> frozenset[str] | None:
    return frozenset(tp.reachable_services) if tp.reachable_services else None


@functools.lru_cache(maxsize=256)
def _dns(names: ServiceNames, reachable: frozenset[str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({(n.hostname, n.vip) for n in names if reachable is None or n.service in reachable}))


def targets(tp: TransparentProxying, names: ServiceNames) -> tuple[Target, ...]:
    """The captured outbounds of a Dataplane with ``tp`` (shared by every such Dataplane of the mesh)."""
    return _targets(names, _reachable(tp))


@functools.lru_cache(maxsize=256)
def _targets(names: ServiceNames, reachable: frozenset[str] | None) -> tuple[Target, ...]:
    out: dict[tuple[str, int], Target] = {}
    for n in names:
        if reachable is not None and n.service not in reachable:
            continue
        match = Tags({**n.tags, _SERVICE_TAG: n.service})
        for port in n.ports:
            out.setdefault((n.vip, port), Target(n.service, n.vip, port, n.tags, match))
    return tuple(out[k] for k in sorted(out))
