"""MeshHealthCheck: active health checks from clients to their destinations (``to[]`` only).

Thresholds are counts (at least 1); ``tcp``, ``http`` and ``grpc`` checks may be combined, each can be
``disabled``; ``healthyPanicThreshold`` is a percentage.
"""

from __future__ import annotations

from pydantic import Field

from atoll.resources.base import Check, Duration, Percentage, Spec, parse_duration, spec_check
from atoll.resources.models.common import HeaderModifier
from atoll.resources.models.policy import PolicyItem, ToPolicySpec, register_policy
from atoll.resources.models.targetref import TO_KINDS, TOP_KINDS_GW, RefRules


class TcpCheck(Spec):
    disabled: bool | None = None
    send: str | None = None
    receive: list[str] | None = None


class HttpCheck(Spec):
    disabled: bool | None = None
    path: str | None = None
    request_headers_to_add: HeaderModifier | None = None
    expected_statuses: list[int] | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if self.path is not None and not self.path.startswith("/"):
            check.add("path", f'must start with "/", got "{self.path}"')
        for i, s in enumerate(self.expected_statuses or []):
            if not 100 <= s <= 599:
                check.add(f"expectedStatuses[{i}]", f"HTTP status {s} out of range 100..599")


class GrpcCheck(Spec):
    disabled: bool | None = None
    service_name: str | None = None
    authority: str | None = None


class Conf(Spec):
    interval: Duration | None = None
    timeout: Duration | None = None
    unhealthy_threshold: int | None = Field(default=None, ge=1)
    healthy_threshold: int | None = Field(default=None, ge=1)
    initial_jitter: Duration | None = None
    interval_jitter: Duration | None = None
    interval_jitter_percent: int | None = Field(default=None, ge=0, le=100)
    healthy_panic_threshold: Percentage | None = None
    fail_traffic_on_panic: bool | None = None
    event_log_path: str | None = None
    always_log_health_check_failures: bool | None = None
    no_traffic_interval: Duration | None = None
    tcp: TcpCheck | None = None
    http: HttpCheck | None = None
    grpc: GrpcCheck | None = None
    reuse_connection: bool | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        for f in ("interval", "timeout"):
            v = getattr(self, f)
            if v is not None and parse_duration(v) <= 0:
                check.add(f, "must be greater than zero")


class MeshHealthCheckSpec(ToPolicySpec[PolicyItem[Conf]]):
    refs = RefRules(top=TOP_KINDS_GW, to=TO_KINDS, gateway_tags=True)


MESH_HEALTH_CHECK = register_policy("MeshHealthCheck", "meshhealthchecks", MeshHealthCheckSpec)
