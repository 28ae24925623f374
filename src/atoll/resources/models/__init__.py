"""One module per resource kind; each registers its ResourceType at import.

``targetref`` holds the targetRef model and its checks; ``policy`` the skeleton every ``Mesh*``
policy shares (generic ``to``/``from``/``rules`` items, spec bases, ``register_policy``), so each
policy module declares only its ``default`` models and allowed targetRef kinds; ``common`` the
blocks several policies share.
"""

from atoll.resources.models import (
    dataplane,
    dataplane_insight,
    external_service,
    global_secret,
    mesh,
    mesh_access_log,
    mesh_circuit_breaker,
    mesh_fault_injection,
    mesh_health_check,
    mesh_http_route,
    mesh_load_balancing_strategy,
    mesh_rate_limit,
    mesh_retry,
    mesh_tcp_route,
    mesh_timeout,
    mesh_traffic_permission,
    secret,
    vip_allocation,
    virtual_outbound,
    zone,
    zone_egress,
    zone_ingress,
)

__all__ = [
    "dataplane",
    "dataplane_insight",
    "external_service",
    "global_secret",
    "mesh",
    "mesh_access_log",
    "mesh_circuit_breaker",
    "mesh_fault_injection",
    "mesh_health_check",
    "mesh_http_route",
    "mesh_load_balancing_strategy",
    "mesh_rate_limit",
    "mesh_retry",
    "mesh_tcp_route",
    "mesh_timeout",
    "mesh_traffic_permission",
    "secret",
    "vip_allocation",
    "virtual_outbound",
    "zone",
    "zone_egress",
    "zone_ingress",
]
