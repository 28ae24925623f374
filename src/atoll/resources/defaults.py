"""The policies Kuma creates with every new mesh, as pure data.

``initial_policies(mesh)`` returns ``mesh-timeout-all-<mesh>``, ``mesh-retry-all-<mesh>`` and
``mesh-circuit-breaker-all-<mesh>`` (the values Kuma 2.x uses), minus the kinds the mesh lists in
``skipCreatingInitialPolicies`` (``["*"]`` skips them all; policy names are accepted too). The caller
(the control plane) stores them when it creates the mesh; nothing here touches a store.
"""

from __future__ import annotations

from typing import Any

from atoll.resources.codec import decode
from atoll.resources.meta import Resource
from atoll.resources.models.mesh import MeshSpec

_TIMEOUT: dict[str, Any] = {
    "targetRef": {"kind": "Mesh", "proxyTypes": ["Sidecar"]},
    "to": [
        {
            "targetRef": {"kind": "Mesh"},
            "default": {
                "connectionTimeout": "5s",
                "idleTimeout": "1h",
                "http": {"requestTimeout": "15s", "streamIdleTimeout": "30m"},
            },
        }
    ],
    "from": [
        {
            "targetRef": {"kind": "Mesh"},
            "default": {
                "connectionTimeout": "10s",
                "idleTimeout": "2h",
                "http": {"requestTimeout": "0s", "streamIdleTimeout": "1h", "maxStreamDuration": "0s"},
            },
        }
    ],
}

_BACKOFF = {"baseInterval": "25ms", "maxInterval": "250ms"}
_RETRY: dict[str, Any] = {
    "targetRef": {"kind": "Mesh"},
    "to": [
        {
            "targetRef": {"kind": "Mesh"},
            "default": {
                "tcp": {"maxConnectAttempt": 5},
                "http": {"numRetries": 5, "perTryTimeout": "16s", "backOff": dict(_BACKOFF)},
                "grpc": {"numRetries": 5, "perTryTimeout": "16s", "backOff": dict(_BACKOFF)},
            },
        }
    ],
}

_CB_DEFAULT: dict[str, Any] = {
    "connectionLimits": {"maxConnections": 1024, "maxPendingRequests": 1024, "maxRequests": 1024, "maxRetries": 3},
    "outlierDetection": {
        "disabled": False,
        "detectors": {
            "totalFailures": {"consecutive": 5},
            "gatewayFailures": {"consecutive": 5},
            "localOriginFailures": {"consecutive": 5},
            "successRate": {"requestVolume": 10, "minimumHosts": 5, "standardDeviationFactor": "1.9"},
            "failurePercentage": {"requestVolume": 10, "minimumHosts": 5, "threshold": 85},
        },
    },
}
_CIRCUIT_BREAKER: dict[str, Any] = {
    "targetRef": {"kind": "Mesh"},
    "to": [{"targetRef": {"kind": "Mesh"}, "default": _CB_DEFAULT}],
    "from": [{"targetRef": {"kind": "Mesh"}, "default": _CB_DEFAULT}],
}

# (kind, name prefix, spec) in the order Kuma creates them.
INITIAL: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("MeshTimeout", "mesh-timeout-all", _TIMEOUT),
    ("MeshRetry", "mesh-retry-all", _RETRY),
    ("MeshCircuitBreaker", "mesh-circuit-breaker-all", _CIRCUIT_BREAKER),
)


def initial_policies(mesh: Resource[Any]) -> list[Resource[Any]]:
    """The default policies for ``mesh`` (a Mesh resource), honouring ``skipCreatingInitialPolicies``."""
    if mesh.type != "Mesh":
        raise ValueError(f"initial_policies needs a Mesh, got {mesh.type}")
    spec = mesh.spec
    skip = set(spec.skip_creating_initial_policies or []) if isinstance(spec, MeshSpec) else set()
    out: list[Resource[Any]] = []
    for kind, prefix, body in INITIAL:
        name = f"{prefix}-{mesh.name}"
        if "*" in skip or kind in skip or name in skip:
            continue
        out.append(decode({"type": kind, "name": name, "mesh": mesh.name, "spec": body}))
    return out
