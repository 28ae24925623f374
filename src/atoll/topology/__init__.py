"""Resources of a mesh -> per-proxy views (pure: no I/O, no store, no clock).

Build a ``MeshView`` once per mesh (it indexes endpoints and protocols per service), then call
``proxy_view(mesh_view, name)`` per proxy. ``dependencies``/``services`` tell which proxies a
change affects. Modules:

- ``view``: ``MeshView``, ``ProxyView`` and its inbound/outbound views, ``proxy_view``, ``with_endpoints``;
- ``index``: the per-mesh index (``Endpoint``, ``MeshIndex``: endpoints, protocols, externals);
- ``external``: ExternalServices as views; ``ingress``/``egress``: the zone ingress and egress views;
- ``matching``: which ``Mesh*`` policies apply to a proxy (selection, order, folding);
- ``proxy_refs``: what selection reads of a Dataplane (``ProxyRefs``), read once per Dataplane;
- ``settings``: the typed, frozen settings policies fold into, which the generators read;
- ``explain``: the same selection and folding, explained per inbound/outbound (``atoll inspect``);
- ``enforcement``: the one table of what is stored and not enforced, and the warnings of a write;
- ``tags``: ``Tags`` and the protocol vocabulary; ``identity``: an mTLS proxy's certificate material.
"""

from atoll.topology.external import ExternalTls, ExternalView, external_view
from atoll.topology.identity import Identity
from atoll.topology.index import Endpoint, MeshIndex
from atoll.topology.matching import KIND_ORDER, PolicyEntry, match_policies, sort_policies
from atoll.topology.settings import NO_SETTINGS, PolicySettings
from atoll.topology.settings.conf import Conf, merge_patch
from atoll.topology.settings.traffic_permission import TRAFFIC_PERMISSION, IdentityRules, Permission
from atoll.topology.tags import HTTP_PROTOCOLS, Protocol, Tags, common_protocol, protocol_of
from atoll.topology.view import (
    DEFAULT_OUTBOUND_ADDRESS,
    DEFAULT_SERVICE_ADDRESS,
    EGRESS_SERVICE,
    InboundView,
    MeshView,
    MtlsView,
    OutboundView,
    ProxyView,
    dependencies,
    dependents,
    endpoints_by_service,
    proxy_view,
    reaches,
    service_protocol,
    services,
    sni,
    spiffe_id,
    with_endpoints,
)

__all__ = [
    "DEFAULT_OUTBOUND_ADDRESS",
    "DEFAULT_SERVICE_ADDRESS",
    "EGRESS_SERVICE",
    "HTTP_PROTOCOLS",
    "KIND_ORDER",
    "NO_SETTINGS",
    "TRAFFIC_PERMISSION",
    "Conf",
    "Endpoint",
    "ExternalTls",
    "ExternalView",
    "Identity",
    "IdentityRules",
    "InboundView",
    "MeshIndex",
    "MeshView",
    "MtlsView",
    "OutboundView",
    "Permission",
    "PolicyEntry",
    "PolicySettings",
    "Protocol",
    "ProxyView",
    "Tags",
    "common_protocol",
    "dependencies",
    "dependents",
    "endpoints_by_service",
    "external_view",
    "match_policies",
    "merge_patch",
    "protocol_of",
    "proxy_view",
    "reaches",
    "service_protocol",
    "services",
    "sni",
    "sort_policies",
    "spiffe_id",
    "with_endpoints",
]
