"""MeshRateLimit: local (per proxy) rate limits on inbound HTTP requests and TCP connections.

``local.http.requestRate{num, interval}`` with an optional ``onRateLimit{status, headers}``;
``local.tcp.connectionRate{num, interval}``. ``num`` is at least 1, ``interval`` at least 50ms.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from atoll.resources.base import Check, Duration, Spec, parse_duration
from atoll.resources.models.common import HeaderModifier
from atoll.resources.models.policy import FullPolicySpec, PolicyItem, PolicyRule, register_policy
from atoll.resources.models.targetref import TOP_KINDS_GW, RefRules


class Rate(Spec):
    num: int = Field(ge=1)
    interval: Duration

    @model_validator(mode="after")
    def _check(self) -> Rate:
        check = Check()
        if parse_duration(self.interval) < 0.05:
            check.add("interval", f'must be at least 50ms, got "{self.interval}"')
        check.done()
        return self


class OnRateLimit(Spec):
    status: int | None = Field(default=None, ge=100, le=599)
    headers: HeaderModifier | None = None


class HttpLimit(Spec):
    disabled: bool | None = None
    request_rate: Rate | None = None
    on_rate_limit: OnRateLimit | None = None

    @model_validator(mode="after")
    def _check(self) -> HttpLimit:
        check = Check()
        if not self.disabled and self.request_rate is None:
            check.add("requestRate", "required unless disabled is true")
        check.done()
        return self


class TcpLimit(Spec):
    disabled: bool | None = None
    connection_rate: Rate | None = None

    @model_validator(mode="after")
    def _check(self) -> TcpLimit:
        check = Check()
        if not self.disabled and self.connection_rate is None:
            check.add("connectionRate", "required unless disabled is true")
        check.done()
        return self


class Local(Spec):
    http: HttpLimit | None = None
    tcp: TcpLimit | None = None

    @model_validator(mode="after")
    def _check(self) -> Local:
        check = Check()
        if self.http is None and self.tcp is None:
            check.add("", "at least one of http, tcp has to be defined")
        check.done()
        return self


class Conf(Spec):
    local: Local


To = PolicyItem[Conf]
From = PolicyItem[Conf]
Rule = PolicyRule[Conf]


class MeshRateLimitSpec(FullPolicySpec[To, From, Rule]):
    refs = RefRules(
        top=(*TOP_KINDS_GW, "MeshHTTPRoute"), to=("Mesh", "MeshService"), from_=("Mesh",), rules=True, gateway_tags=True
    )


MESH_RATE_LIMIT = register_policy("MeshRateLimit", "meshratelimits", MeshRateLimitSpec)
