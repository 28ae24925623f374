"""Resources of a mesh -> per-proxy views (pure: no I/O, no store, no clock).

Build a ``MeshView`` once per mesh (it indexes endpoints and protocols per service), then call
``proxy_view(mesh_view, name)`` per proxy. ``dependencies``/``services`` tell which proxies a
change affects. See ``atoll.topology.view`` for the rules.
"""

from atoll.topology.tags import HTTP_PROTOCOLS, Protocol, Tags, common_protocol, protocol_of
from atoll.topology.view import (
    DEFAULT_OUTBOUND_ADDRESS,
    DEFAULT_SERVICE_ADDRESS,
    Endpoint,
    InboundView,
    MeshIndex,
    MeshView,
    MtlsView,
    OutboundView,
    ProxyView,
    dependencies,
    dependents,
    endpoints_by_service,
    proxy_view,
    service_protocol,
    services,
    sni,
    spiffe_id,
)

__all__ = [
    "DEFAULT_OUTBOUND_ADDRESS",
    "DEFAULT_SERVICE_ADDRESS",
    "HTTP_PROTOCOLS",
    "Endpoint",
    "InboundView",
    "MeshIndex",
    "MeshView",
    "MtlsView",
    "OutboundView",
    "Protocol",
    "ProxyView",
    "Tags",
    "common_protocol",
    "dependencies",
    "dependents",
    "endpoints_by_service",
    "protocol_of",
    "proxy_view",
    "service_protocol",
    "services",
    "sni",
    "spiffe_id",
]
