"""The frozen values a proxy's view is made of: ``ProxyView`` with its ``InboundView``s and
``OutboundView``s, ``MtlsView``, and the mesh naming of mTLS (``sni``, ``spiffe_id``).

Built by ``atoll.topology.view`` (which re-exports them) and read by the generators. Every field is
a tuple, ``Tags``, a typed setting or a scalar: equal inputs give equal, hashable views.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from atoll.topology.external import ExternalView
from atoll.topology.index import Endpoint
from atoll.topology.routes import Split
from atoll.topology.settings import NO_IDENTITY_RULES, NO_SETTINGS, IdentityRules, Permission, PolicySettings
from atoll.topology.tags import Protocol, Tags
from atoll.topology.transparent import TransparentView

__all__ = [
    "DEFAULT_OUTBOUND_ADDRESS",
    "DEFAULT_SERVICE_ADDRESS",
    "EGRESS_SERVICE",
    "InboundView",
    "MtlsView",
    "OutboundView",
    "ProxyView",
    "sni",
    "spiffe_id",
]

DEFAULT_SERVICE_ADDRESS = "127.0.0.1"
EGRESS_SERVICE = "zone-egress"
"""The service name in a zone egress's certificate: ``spiffe://<mesh>/zone-egress``."""
DEFAULT_OUTBOUND_ADDRESS = "127.0.0.1"
_NO_TAGS = Tags()


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
    captured: bool = False
    """Reached through the inbound capture listener (transparent proxy): the listener binds no port."""


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
    captured: bool = False
    """A ``VIP:port`` of the names table, reached through the outbound capture listener (binds no port)."""
    subset: Tags = _NO_TAGS
    """For a VirtualOutbound name: only the endpoints with these tags, in a cluster of their own."""


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
    transparent: TransparentView | None = None
    """Set for a Dataplane with ``networking.transparentProxying``: capture listeners and DNS."""

    def sni(self, service: str, tags: Mapping[str, str] | None = None) -> str:
        return sni(service, self.mesh, tags)

    def spiffe_id(self, service: str) -> str:
        return spiffe_id(self.mesh, service)


def sni(service: str, mesh: str, tags: Mapping[str, str] | None = None) -> str:
    """The TLS SNI of ``service`` in ``mesh``: ``backend{mesh=default}``, with any other ``tags``
    (except ``kuma.io/service``) added in key order: ``backend{mesh=default,version=v1}``."""
    extra = {k: v for k, v in (tags or {}).items() if k not in ("kuma.io/service", "mesh")}
    parts = [f"{k}={v}" for k, v in sorted({"mesh": mesh, **extra}.items())]
    return f"{service}{{{','.join(parts)}}}"


def spiffe_id(mesh: str, service: str) -> str:
    """The SPIFFE identity of ``service`` in ``mesh``: ``spiffe://<mesh>/<service>``."""
    return f"spiffe://{mesh}/{service}"
