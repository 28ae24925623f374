"""Per-proxy views -> Envoy v3 resources and bootstraps (pure: no I/O, no clock, no store).

``sidecar_resources(view, identity=None)`` and ``grpc_proxyless_resources(view)`` return
``EnvoyResources`` (sorted tuples of protobuf messages per xDS type); ``envoy_bootstrap``/
``grpc_xds_bootstrap`` return plain JSON-able bootstrap documents. Names and builders live in
``atoll.xds.generate.envoy``; mTLS/SDS in ``tls``, MeshTrafficPermission -> RBAC in ``rbac``, the
other policies in ``policies``. A mesh with mTLS needs the proxy's ``Identity``
(``MissingIdentity`` otherwise, a ``GenerationError``).
"""

from atoll.xds.generate.bootstrap import ADS_CLUSTER, TOKEN_HEADER, envoy_bootstrap, grpc_xds_bootstrap
from atoll.xds.generate.proxyless import grpc_listener_name, grpc_proxyless_resources
from atoll.xds.generate.resources import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    TYPE_ORDER,
    EnvoyResources,
    message_to_dict,
    resource_name,
)
from atoll.xds.generate.sidecar import GenerationError, MissingIdentity, sidecar_endpoint_update, sidecar_resources

__all__ = [
    "ADS_CLUSTER",
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "LISTENER_TYPE",
    "ROUTE_TYPE",
    "SECRET_TYPE",
    "TOKEN_HEADER",
    "TYPE_ORDER",
    "EnvoyResources",
    "GenerationError",
    "MissingIdentity",
    "envoy_bootstrap",
    "grpc_listener_name",
    "grpc_proxyless_resources",
    "grpc_xds_bootstrap",
    "message_to_dict",
    "resource_name",
    "sidecar_endpoint_update",
    "sidecar_resources",
]
