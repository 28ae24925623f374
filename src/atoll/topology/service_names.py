"""Service names: the hostnames and VIPs a transparent-proxied application can call.

With the transparent proxy an application calls ``http://backend.mesh/`` instead of an explicit
outbound port: DNS answers ``backend.mesh`` with a virtual IP (VIP) of the mesh, the application
connects to ``VIP:80`` (or ``VIP:<the service's port>``), iptables sends the connection to Envoy's
outbound capture listener, and Envoy picks the outbound from the original destination.

``ServiceNames`` is the table of one mesh in one zone, handed to ``MeshView`` (its ``names`` field)
by the control plane, which owns the allocation (stable VIPs kept in the store). Each
``VirtualName`` is one hostname with its VIP, the ports it listens on, the service its traffic goes
to and, for a VirtualOutbound, the tag values that narrow the endpoints (``tags``, empty for a plain
``<service>.mesh`` name).

The table is a plain frozen value: equal inputs give an equal table, so a view that holds it still
compares (and hashes) by value and an unchanged table costs no regeneration.

What the control plane puts in it (``atoll.topology.name_demand``, ``atoll.proxies.vips``): the table
is the same for every transparent-proxied proxy of the mesh (VirtualOutbound selectors pick
destinations, not callers); a hostname may appear in several entries, always with the same VIP (an
alias such as ``backend.default.svc.80.mesh`` of ``backend_default_svc_80.mesh``, or one
VirtualOutbound name per port whose tag values differ), and a (VIP, port) pair always leads to one
service and tag set; ``tags`` never holds ``kuma.io/service`` (that is ``service``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from atoll.topology.tags import Tags

__all__ = ["NO_NAMES", "SERVICE_NAME_PORT", "ServiceNames", "VirtualName"]

_NO_TAGS = Tags()

SERVICE_NAME_PORT = 80
"""Every ``<service>.mesh`` VIP listens on port 80 (and on the service's own port, as in Kuma)."""


@dataclass(frozen=True, slots=True)
class VirtualName:
    """One name: ``hostname`` resolves to ``vip``; a connection to ``vip:p`` for ``p`` in ``ports``
    goes to ``service``'s endpoints, only those carrying every tag of ``tags`` when it is not empty.

    ``origin`` says where the name comes from, for inspection: ``"service"`` for a
    ``<service>.mesh`` name, ``"VirtualOutbound/<name>"`` for one rendered from a VirtualOutbound.
    """

    hostname: str
    vip: str
    ports: tuple[int, ...]
    service: str
    tags: Tags = _NO_TAGS
    origin: str = "service"


@dataclass(frozen=True, slots=True)
class ServiceNames:
    """The names of one mesh in one zone, sorted by hostname (the constructor's caller sorts)."""

    entries: tuple[VirtualName, ...] = ()

    def __iter__(self) -> Iterator[VirtualName]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def subsets(self) -> dict[str, frozenset[Tags]]:
        """Per service, the tag subsets its names narrow to (VirtualOutbound names): what a zone
        ingress or egress must offer by SNI, as it does for routes' subsets."""
        out: dict[str, set[Tags]] = {}
        for n in self.entries:
            if n.tags:
                out.setdefault(n.service, set()).add(n.tags)
        return {s: frozenset(t) for s, t in out.items()}


NO_NAMES = ServiceNames()
"""A mesh without names (no transparent proxying anywhere, or names not allocated yet)."""
