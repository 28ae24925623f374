"""MeshRateLimit: local (per proxy) rate limits on inbound HTTP requests and TCP connections.

``local.http.requestRate{num, interval}`` with an optional ``onRateLimit{status, headers}``;
``local.tcp.connectionRate{num, interval}``. ``num`` is at least 1, ``interval`` at least 50ms.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ModelWrapValidatorHandler, model_validator

from atoll.resources.base import Check, Duration, Spec, parse_duration
from atoll.resources.models.common import HeaderModifier, register_policy
from atoll.resources.models.targetref import TargetRef, section_field, validate_policy


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


class To(Spec):
    target_ref: TargetRef
    default: Conf


class From(Spec):
    target_ref: TargetRef
    default: Conf


class Rule(Spec):
    default: Conf


class MeshRateLimitSpec(Spec):
    target_ref: TargetRef | None = None
    to: list[To] | None = None
    from_: list[From] | None = section_field()
    rules: list[Rule] | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, data: Any, handler: ModelWrapValidatorHandler[MeshRateLimitSpec]) -> MeshRateLimitSpec:
        return validate_policy(data, handler, "MeshRateLimit")


MESH_RATE_LIMIT = register_policy("MeshRateLimit", "meshratelimits", MeshRateLimitSpec)
