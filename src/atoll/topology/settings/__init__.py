"""Typed, frozen settings of the ``Mesh*`` policies, as the generators read them.

``atoll.topology.matching`` finds, for each outbound and inbound of a proxy, the policy items that
apply, in merge order (least to most specific). ``fold_settings`` turns them into one
``PolicySettings``: a field per policy kind, ``None`` when no policy of that kind applies, else that
kind's settings value. Settings are frozen dataclasses with slots, made of numbers (durations in
seconds, parsed here once), strings, ``Literal`` choices and tuples: hashable, so views stay values
and the generators' memos keep working; ``PolicySettings`` caches its hash. The camelCase JSON of
the policies is read only in this package (``conf``'s readers), never by a generator.

MeshTrafficPermission is per caller rather than merged: ``traffic_permission`` (``Permission``,
``IdentityRules``), kept beside ``PolicySettings`` on each inbound.

Adding a policy kind (MeshHTTPRoute, MeshFaultInjection, ...):

1. **Settings type**: a module here with a frozen, slotted dataclass and a fold from the kind's
   ``default`` blocks. Most kinds merge them (RFC 7396) and read the result:
   ``Settings.from_conf(merged(defaults))``, the ``_merged`` helper below; a kind that does not
   merge (routes append their rules) writes its own ``fold(defaults) -> Settings``.
2. **Fold**: a field on ``PolicySettings`` and one line in ``fold_settings`` naming the kind.
   ``matching`` already selects and orders every kind's ``to[]``/``from[]``/``rules[]`` items.
3. **Generator function**: in ``atoll.xds.generate.policies``, a module with the function that
   applies the settings to the listener or cluster, called from that package's ``apply_*``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from atoll.topology.settings.access_log import AccessLogSettings
from atoll.topology.settings.circuit_breaker import CircuitBreakerSettings
from atoll.topology.settings.conf import merged
from atoll.topology.settings.fault_injection import FaultInjectionSettings
from atoll.topology.settings.health_check import HealthCheckSettings
from atoll.topology.settings.load_balancing import LoadBalancingSettings
from atoll.topology.settings.rate_limit import RateLimitSettings
from atoll.topology.settings.retry import RetrySettings
from atoll.topology.settings.routes import HttpRouteSettings, TcpRouteSettings, fold_http_route, fold_tcp_route
from atoll.topology.settings.timeout import TimeoutSettings
from atoll.topology.settings.traffic_permission import NO_IDENTITY_RULES, IdentityRules, Permission

__all__ = [
    "BY_SOURCE_KINDS",
    "NO_IDENTITY_RULES",
    "NO_SETTINGS",
    "AccessLogSettings",
    "CircuitBreakerSettings",
    "FaultInjectionSettings",
    "HealthCheckSettings",
    "HttpRouteSettings",
    "IdentityRules",
    "LoadBalancingSettings",
    "Permission",
    "PolicySettings",
    "RateLimitSettings",
    "RetrySettings",
    "TcpRouteSettings",
    "TimeoutSettings",
    "fold_settings",
]

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """The settings of every merged policy kind for one outbound (``to[]``) or inbound (``from[]``
    with a Mesh source, ``rules[]``); ``None`` where no policy of the kind applies."""

    timeout: TimeoutSettings | None = None
    """MeshTimeout: outbound and inbound."""
    retry: RetrySettings | None = None
    """MeshRetry: outbound only."""
    circuit_breaker: CircuitBreakerSettings | None = None
    """MeshCircuitBreaker: outbound and inbound."""
    health_check: HealthCheckSettings | None = None
    """MeshHealthCheck: outbound only."""
    load_balancing: LoadBalancingSettings | None = None
    """MeshLoadBalancingStrategy: outbound only."""
    http_route: HttpRouteSettings | None = None
    """MeshHTTPRoute (``to[]`` items, not merged: ``settings.routes``): outbound only."""
    tcp_route: TcpRouteSettings | None = None
    """MeshTCPRoute: outbound only."""
    fault_injection: FaultInjectionSettings | None = None
    """MeshFaultInjection: inbound only, per calling source (see ``BY_SOURCE_KINDS``)."""
    rate_limit: RateLimitSettings | None = None
    """MeshRateLimit: inbound only."""
    access_log: AccessLogSettings | None = None
    """MeshAccessLog: outbound and inbound."""
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        kinds = (
            self.timeout,
            self.retry,
            self.circuit_breaker,
            self.health_check,
            self.load_balancing,
            self.http_route,
            self.tcp_route,
            self.fault_injection,
            self.rate_limit,
            self.access_log,
        )
        object.__setattr__(self, "_hash", hash(kinds))

    def __hash__(self) -> int:  # computed once: views (and so the generators' memo keys) hash it often
        return self._hash


NO_SETTINGS = PolicySettings()

BY_SOURCE_KINDS = frozenset({"MeshFaultInjection"})
"""Kinds whose ``from[]`` items of every source kind reach ``fold_settings`` whole (``targetRef`` and
``default``, not just ``default``): their settings depend on the caller, not merged into one value."""


def _merged(
    defaults: Mapping[str, Sequence[Mapping[str, Any]]], kind: str, read: Callable[[Mapping[str, Any]], S]
) -> S | None:
    blocks = defaults.get(kind)
    return None if blocks is None else read(merged(blocks))


def _folded(
    defaults: Mapping[str, Sequence[Mapping[str, Any]]],
    kind: str,
    fold: Callable[[Sequence[Mapping[str, Any]]], S],
) -> S | None:
    blocks = defaults.get(kind)
    return None if blocks is None else fold(blocks)


def fold_settings(defaults: Mapping[str, Sequence[Mapping[str, Any]]]) -> PolicySettings:
    """The settings of the ``default`` blocks per kind (each list least to most specific; for the
    ``BY_SOURCE_KINDS`` the whole items)."""
    if not defaults:
        return NO_SETTINGS
    return PolicySettings(
        timeout=_merged(defaults, "MeshTimeout", TimeoutSettings.from_conf),
        retry=_merged(defaults, "MeshRetry", RetrySettings.from_conf),
        circuit_breaker=_merged(defaults, "MeshCircuitBreaker", CircuitBreakerSettings.from_conf),
        health_check=_merged(defaults, "MeshHealthCheck", HealthCheckSettings.from_conf),
        load_balancing=_merged(defaults, "MeshLoadBalancingStrategy", LoadBalancingSettings.from_conf),
        http_route=_folded(defaults, "MeshHTTPRoute", fold_http_route),
        tcp_route=_folded(defaults, "MeshTCPRoute", fold_tcp_route),
        fault_injection=_folded(defaults, "MeshFaultInjection", FaultInjectionSettings.fold),
        rate_limit=_merged(defaults, "MeshRateLimit", RateLimitSettings.from_conf),
        access_log=_merged(defaults, "MeshAccessLog", AccessLogSettings.from_conf),
    )
