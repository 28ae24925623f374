"""What Atoll stores but does not enforce: one table, and the warnings a write answers with.

``NOT_ENFORCED`` is the only list of kinds and fields that are accepted (validated, stored, synced)
but read by no generator. Each row names a resource type, a field path in the resource's JSON form
(``spec`` fields as ``Resource.spec_dict`` gives them: camelCase, only what the user set) and why.
Paths are dotted; ``[]`` means every item of a list (``to[].targetRef.kind``); an empty path means
the whole kind; a type whose fields sit at the top level of its document (``Mesh``) has paths
without ``spec.``. A row with ``values`` applies only when the field holds one of them (or, for a list,
contains one). When a generator starts enforcing something, its row is deleted here, and the write
warnings, the README's list (``tests/test_docs.py``) and ``atoll inspect`` follow.

``unenforced(resource)`` gives the warnings of one resource: ``<field path>: <why>`` with the
actual indexes (``spec.to[1].default.localityAwareness.localZone``), or ``<kind>: <why>`` for a
whole kind, in which case its field rows are not listed (they say what will still be ignored once
the kind itself is enforced). ``warning_text`` is the line a client prints.

A kind accepted before its generator exists gets a whole-kind row (its field rows say what will
still be ignored once it is enforced); landing the generator deletes that row, and the rows of the
fields it reads. ``tests/generate/test_enforcement.py`` fails when a registered policy kind is
neither folded into ``PolicySettings`` nor listed here as a whole kind, or is both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from atoll.resources.meta import Resource
from atoll.resources.types import get_type

__all__ = [
    "NOT_ENFORCED",
    "NotEnforced",
    "not_enforced_kinds",
    "unenforced",
    "warning_text",
]

WARNING_PREFIX = "stored, not enforced: "


@dataclass(frozen=True, slots=True)
class NotEnforced:
    """One kind (``path`` empty) or field of a kind that is stored and not enforced, and why."""

    kind: str
    path: str
    reason: str
    values: tuple[str, ...] = ()
    """When set: only these values of the field are not enforced (others are)."""


_GATEWAY = "gateways (MeshGateway, builtin gateway mode) are not supported yet"
_MES = "MeshExternalService and MeshMultiZoneService are not supported yet: a to[] item naming one selects nothing"


def _common(kind: str, *, to: bool = True) -> tuple[NotEnforced, ...]:
    """What every sidecar policy kind ignores: gateway targets, and destinations not supported yet."""
    rows = [
        NotEnforced(kind, "targetRef.kind", _GATEWAY, ("MeshGateway",)),
        NotEnforced(kind, "targetRef.proxyTypes", _GATEWAY, ("Gateway",)),
    ]
    if to:
        rows.append(NotEnforced(kind, "to[].targetRef.kind", _MES, ("MeshExternalService", "MeshMultiZoneService")))
    return tuple(rows)


# -- The kinds enforced today: the fields their generators do not read ------------------------------

_ENFORCED_GAPS: tuple[NotEnforced, ...] = (
    *_common("MeshTrafficPermission", to=False),
    *_common("MeshTimeout"),
    *_common("MeshRetry"),
    NotEnforced(
        "MeshRetry",
        "to[].default.http.hostSelection[].predicate",
        "only OmitPreviousHosts is translated",
        ("OmitHostsWithTags", "OmitPreviousPriorities"),
    ),
    *_common("MeshCircuitBreaker"),
    *_common("MeshHealthCheck"),
    NotEnforced("MeshHealthCheck", "to[].default.eventLogPath", "health check events are not logged to a file"),
    NotEnforced(
        "MeshHealthCheck",
        "to[].default.http.requestHeadersToAdd.remove",
        "a health check request only sets and adds headers",
    ),
    *_common("MeshFaultInjection", to=False),
    *_common("MeshRateLimit", to=False),
    *_common("MeshAccessLog"),
    *(
        NotEnforced(
            "MeshAccessLog",
            f"{section}[].default.backends[].type",
            "OpenTelemetry backends need MeshOpenTelemetryBackend, not supported yet",
            ("OpenTelemetry",),
        )
        for section in ("to", "from", "rules")
    ),
    *_common("MeshLoadBalancingStrategy"),
    NotEnforced(
        "MeshLoadBalancingStrategy",
        "to[].default.localityAwareness.localZone",
        "affinity tags within the local zone are not translated",
    ),
    *(
        NotEnforced(
            "MeshLoadBalancingStrategy",
            f"to[].default.{where}hashPolicies[].type",
            "Envoy routes cannot hash on SourceIP; use type Connection with connection.sourceIP",
            ("SourceIP",),
        )
        for where in ("", "loadBalancer.ringHash.", "loadBalancer.maglev.")
    ),
)

# -- Other stored kinds and fields ----------------------------------------------------------------

_OTHER: tuple[NotEnforced, ...] = (
    NotEnforced("Mesh", "metrics", "Mesh-level metrics backends are not exposed (no Prometheus endpoint)"),
    NotEnforced("Mesh", "tracing", "Mesh-level tracing backends are read by no policy (no MeshTrace)"),
    NotEnforced("Mesh", "logging", "Mesh-level logging backends are read by no policy (use MeshAccessLog)"),
    NotEnforced("Mesh", "constraints", "Dataplane constraints are not checked when a proxy connects"),
    NotEnforced("Mesh", "routing.defaultForbidMeshExternalServiceAccess", "MeshExternalService is not supported yet"),
    NotEnforced("Mesh", "mtls.skipValidation", "only the builtin CA backend is supported: there is nothing to skip"),
    NotEnforced("Mesh", "meshServices", "the MeshService family of resources is not supported yet"),
    NotEnforced(
        "Dataplane",
        "networking.transparentProxying.redirectPortInboundV6",
        "the transparent proxy redirects IPv4 only",
    ),
    NotEnforced(
        "Dataplane", "networking.transparentProxying.ipFamilyMode", "the transparent proxy redirects IPv4 only"
    ),
    NotEnforced("Dataplane", "networking.gateway", _GATEWAY),
    NotEnforced("Dataplane", "metrics", "no Prometheus endpoint is exposed"),
)

# -- The route kinds --------------------------------------------------------------------------------

_BACKEND_KINDS = ("MeshExternalService", "MeshMultiZoneService")
_BACKENDS = "a backendRef to a MeshExternalService or MeshMultiZoneService is not resolved (not supported yet)"

_ROUTES: tuple[NotEnforced, ...] = (
    *_common("MeshHTTPRoute"),
    NotEnforced("MeshHTTPRoute", "to[].rules[].default.backendRefs[].kind", _BACKENDS, _BACKEND_KINDS),
    NotEnforced(
        "MeshHTTPRoute", "to[].rules[].default.filters[].requestMirror.backendRef.kind", _BACKENDS, _BACKEND_KINDS
    ),
    *_common("MeshTCPRoute"),
    NotEnforced("MeshTCPRoute", "to[].rules[].default.backendRefs[].kind", _BACKENDS, _BACKEND_KINDS),
)

NOT_ENFORCED: tuple[NotEnforced, ...] = (*_ENFORCED_GAPS, *_ROUTES, *_OTHER)


def not_enforced_kinds() -> dict[str, str]:
    """The kinds stored but not enforced at all, with why."""
    return {row.kind: row.reason for row in NOT_ENFORCED if not row.path}


def _found(value: Any, parts: list[str], where: str) -> Iterator[tuple[str, Any]]:
    """(actual path, value) of every occurrence of the path ``parts`` under ``value``."""
    if not parts:
        yield where, value
        return
    head, rest = parts[0], parts[1:]
    key, many = (head[:-2], True) if head.endswith("[]") else (head, False)
    if not isinstance(value, Mapping) or value.get(key) is None:
        return
    child, path = value[key], f"{where}.{key}"
    if not many:
        yield from _found(child, rest, path)
    elif isinstance(child, list | tuple):
        for i, item in enumerate(child):
            yield from _found(item, rest, f"{path}[{i}]")


def _holds(value: Any, wanted: tuple[str, ...]) -> bool:
    if not wanted:
        return True
    if isinstance(value, list | tuple):
        return any(v in wanted for v in value)
    return value in wanted


def unenforced(resource: Resource[Any]) -> list[str]:
    """The warnings of ``resource``: what of it is stored and not enforced (module docstring)."""
    rows = [row for row in NOT_ENFORCED if row.kind == resource.type]
    whole = [row for row in rows if not row.path]
    if whole:
        return [f"{resource.type}: {row.reason}" for row in whole]
    if not rows:
        return []
    top = [] if get_type(resource.type).flattened else ["spec"]  # a flattened type's fields are top-level
    doc = {"spec": resource.spec_dict()} if top else resource.spec_dict()
    out: list[str] = []
    for row in rows:
        for path, value in _found(doc, [*top, *row.path.split(".")], ""):
            if _holds(value, row.values):
                shown = path.lstrip(".")
                if row.values:
                    shown += ": " + (", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value))
                out.append(f"{shown}: {row.reason}")
    return out


def warning_text(warning: str) -> str:
    """The line a client prints for one warning."""
    return WARNING_PREFIX + warning
