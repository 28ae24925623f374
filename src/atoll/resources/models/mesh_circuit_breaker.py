"""MeshCircuitBreaker: connection limits and outlier detection (passive health checking).

``outlierDetection.detectors`` picks what ejects a host: consecutive total/gateway/local-origin
failures, success rate (``standardDeviationFactor`` is an int or a quoted decimal such as ``"1.9"``)
or failure percentage.
"""

from __future__ import annotations

from pydantic import Field

from atoll.resources.base import Check, Decimal, Duration, Spec, spec_check
from atoll.resources.models.policy import ConfPolicySpec, register_policy
from atoll.resources.models.targetref import TO_KINDS, TOP_KINDS_GW, RefRules


class ConnectionLimits(Spec):
    max_connections: int | None = Field(default=None, ge=1)
    max_connection_pools: int | None = Field(default=None, ge=1)
    max_pending_requests: int | None = Field(default=None, ge=1)
    max_requests: int | None = Field(default=None, ge=1)
    max_retries: int | None = Field(default=None, ge=1)


class Consecutive(Spec):
    consecutive: int | None = Field(default=None, ge=1)


class SuccessRate(Spec):
    minimum_hosts: int | None = Field(default=None, ge=0)
    request_volume: int | None = Field(default=None, ge=0)
    standard_deviation_factor: Decimal | None = None


class FailurePercentage(Spec):
    minimum_hosts: int | None = Field(default=None, ge=0)
    request_volume: int | None = Field(default=None, ge=0)
    threshold: int | None = Field(default=None, ge=0, le=100)


class Detectors(Spec):
    total_failures: Consecutive | None = None
    gateway_failures: Consecutive | None = None
    local_origin_failures: Consecutive | None = None
    success_rate: SuccessRate | None = None
    failure_percentage: FailurePercentage | None = None


class OutlierDetection(Spec):
    disabled: bool | None = None
    interval: Duration | None = None
    base_ejection_time: Duration | None = None
    max_ejection_percent: int | None = Field(default=None, ge=0, le=100)
    split_external_and_local_errors: bool | None = None
    detectors: Detectors | None = None
    healthy_panic_threshold: int | None = Field(default=None, ge=0, le=100)


class Conf(Spec):
    connection_limits: ConnectionLimits | None = None
    outlier_detection: OutlierDetection | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        check.one_of(self, "connection_limits", "outlier_detection")


class MeshCircuitBreakerSpec(ConfPolicySpec[Conf]):
    refs = RefRules(top=TOP_KINDS_GW, to=TO_KINDS, from_=("Mesh",), rules=True)


MESH_CIRCUIT_BREAKER = register_policy("MeshCircuitBreaker", "meshcircuitbreakers", MeshCircuitBreakerSpec)
