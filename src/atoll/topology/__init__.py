"""Resources of a mesh -> per-proxy views (pure: no I/O, no store, no clock).

Build a ``MeshView`` once per mesh (it indexes endpoints and protocols per service), then call
``proxy_view(mesh_view, name)`` per proxy. ``dependencies``/``services`` tell which proxies a
change affects. See ``atoll.topology.view`` for the rules and ``atoll.topology.policies`` for policy
matching. ``Identity`` is the certificate material of an mTLS proxy.
"""

from atoll.topology.identity import Identity
from atoll.topology.policies import (
    KIND_ORDER,
    TRAFFIC_PERMISSION,
    Conf,
    IdentityRules,
    Permission,
    PolicyEntry,
    match_policies,
    merge_patch,
    sort_policies,
)
from atoll.topology.tags import HTTP_PROTOCOLS, Protocol, Tags, common_protocol, protocol_of
from atoll.topology.view import (
    DEFAULT_OUTBOUND_ADDRESS,
    DEFAULT_SERVICE_ADDRESS,
    EGRESS_SERVICE,
    Endpoint,
    ExternalTls,
    ExternalView,
    InboundView,
    MeshIndex,
    MeshView,
    MtlsView,
    OutboundView,
    ProxyView,
    dependencies,
    dependents,
    endpoints_by_service,
    external_view,
    proxy_view,
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
    "service_protocol",
    "services",
    "sni",
    "sort_policies",
    "spiffe_id",
    "with_endpoints",
]
