"""MeshRateLimit: local (per proxy) rate limits on inbound HTTP requests and TCP connections.

``local.http.requestRate{num, interval}`` with an optional ``onRateLimit{status, headers}``;
``local.tcp.connectionRate{num, interval}``. ``num`` is at least 1, ``interval`` at least 50ms.
As in Kuma, a limit needs only one of its fields (``http``: ``disabled``, ``requestRate`` or
``onRateLimit``; ``tcp``: ``disabled`` or ``connectionRate``): policies merge, so a more specific
one may change just the answer or turn a limit off; a merged limit without a rate limits nothing.

As in Kuma, ``to[]`` configures builtin gateways only (top ``targetRef`` MeshGateway, ``to[]``
Mesh): with any other top it is refused, not stored unenforced. ``MeshHTTPRoute`` is not a top
``targetRef`` kind here (Kuma applies it to gateway routes only; Atoll has no gateways).
"""

from __future__ import annotations

from pydantic import Field

from atoll.resources.base import Check, Duration, Spec, parse_duration, spec_check
from atoll.resources.models.common import HeaderModifier
from atoll.resources.models.policy import ConfPolicySpec, register_policy
from atoll.resources.models.targetref import TOP_KINDS_GW, RefRules


class Rate(Spec):
    num: int = Field(ge=1)
    interval: Duration

    @spec_check
    def _check(self, check: Check) -> None:
        if parse_duration(self.interval) < 0.05:
            check.add("interval", f'must be at least 50ms, got "{self.interval}"')


class OnRateLimit(Spec):
    status: int | None = Field(default=None, ge=100, le=599)
    headers: HeaderModifier | None = None


class HttpLimit(Spec):
    disabled: bool | None = None
    request_rate: Rate | None = None
    on_rate_limit: OnRateLimit | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        check.one_of(self, "disabled", "request_rate", "on_rate_limit")


class TcpLimit(Spec):
    disabled: bool | None = None
    connection_rate: Rate | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        check.one_of(self, "disabled", "connection_rate")


class Local(Spec):
    http: HttpLimit | None = None
    tcp: TcpLimit | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        check.one_of(self, "http", "tcp")


class Conf(Spec):
    local: Local


class MeshRateLimitSpec(ConfPolicySpec[Conf]):
    refs = RefRules(
        top=TOP_KINDS_GW, to=("Mesh",), from_=("Mesh",), rules=True, gateway_tags=True, to_gateway_only=True
    )


MESH_RATE_LIMIT = register_policy("MeshRateLimit", "meshratelimits", MeshRateLimitSpec)
