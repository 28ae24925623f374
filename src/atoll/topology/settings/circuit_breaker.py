"""MeshCircuitBreaker settings: connection limits and outlier detection.

``connection_limits`` is set when the policy names ``connectionLimits`` (even empty);
``outlier_detection`` when it names ``outlierDetection``. A detector that is present (even empty)
is switched on; ``disabled`` turns the whole detection off. Durations are seconds;
``standardDeviationFactor`` and ``healthyPanicThreshold`` are numbers. Fields are ``None`` when
not set, so ``overlay`` can lay a policy over a default (the cross-zone outlier detection).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from atoll.topology.settings.conf import block, flag, integer, number, read_fields, seconds

__all__ = [
    "CircuitBreakerSettings",
    "ConnectionLimits",
    "Consecutive",
    "Detectors",
    "FailurePercentage",
    "OutlierDetection",
    "SuccessRate",
    "Volume",
]


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int | None = None
    max_connection_pools: int | None = None
    max_pending_requests: int | None = None
    max_requests: int | None = None
    max_retries: int | None = None


@dataclass(frozen=True, slots=True)
class Consecutive:
    consecutive: int | None = None


@dataclass(frozen=True, slots=True)
class Volume:
    """What a statistical detector needs before it acts: ``minimum_hosts`` hosts, each having served
    ``request_volume`` requests in the interval."""

    minimum_hosts: int | None = None
    request_volume: int | None = None


@dataclass(frozen=True, slots=True)
class SuccessRate(Volume):
    """Eject hosts whose success rate is ``standard_deviation_factor`` deviations below the mean."""

    standard_deviation_factor: float | None = None


@dataclass(frozen=True, slots=True)
class FailurePercentage(Volume):
    """Eject hosts whose failure percentage reaches ``threshold``."""

    threshold: int | None = None


@dataclass(frozen=True, slots=True)
class Detectors:
    total_failures: Consecutive | None = None
    gateway_failures: Consecutive | None = None
    local_origin_failures: Consecutive | None = None
    success_rate: SuccessRate | None = None
    failure_percentage: FailurePercentage | None = None


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    disabled: bool | None = None
    interval: float | None = None
    base_ejection_time: float | None = None
    max_ejection_percent: int | None = None
    split_external_and_local_errors: bool | None = None
    detectors: Detectors = Detectors()
    healthy_panic_threshold: float | None = None

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> OutlierDetection:
        d = block(conf, "detectors") or {}
        return cls(
            disabled=flag(conf, "disabled"),
            interval=seconds(conf, "interval"),
            base_ejection_time=seconds(conf, "baseEjectionTime"),
            max_ejection_percent=integer(conf, "maxEjectionPercent"),
            split_external_and_local_errors=flag(conf, "splitExternalAndLocalErrors"),
            detectors=Detectors(
                total_failures=_consecutive(d, "totalFailures"),
                gateway_failures=_consecutive(d, "gatewayFailures"),
                local_origin_failures=_consecutive(d, "localOriginFailures"),
                success_rate=_success_rate(block(d, "successRate")),
                failure_percentage=_failure_percentage(block(d, "failurePercentage")),
            ),
            healthy_panic_threshold=number(conf, "healthyPanicThreshold"),
        )


@dataclass(frozen=True, slots=True)
class CircuitBreakerSettings:
    connection_limits: ConnectionLimits | None = None
    outlier_detection: OutlierDetection | None = None

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> CircuitBreakerSettings:
        limits = block(conf, "connectionLimits")
        detection = block(conf, "outlierDetection")
        return cls(
            connection_limits=None if limits is None else read_fields(ConnectionLimits, limits, integer),
            outlier_detection=None if detection is None else OutlierDetection.from_conf(detection),
        )


def _consecutive(detectors: Mapping[str, Any], key: str) -> Consecutive | None:
    conf = block(detectors, key)
    return None if conf is None else Consecutive(consecutive=integer(conf, "consecutive"))


def _volume(conf: Mapping[str, Any]) -> dict[str, int | None]:
    return {"minimum_hosts": integer(conf, "minimumHosts"), "request_volume": integer(conf, "requestVolume")}


def _success_rate(conf: Mapping[str, Any] | None) -> SuccessRate | None:
    if conf is None:
        return None
    return SuccessRate(**_volume(conf), standard_deviation_factor=number(conf, "standardDeviationFactor"))


def _failure_percentage(conf: Mapping[str, Any] | None) -> FailurePercentage | None:
    if conf is None:
        return None
    return FailurePercentage(**_volume(conf), threshold=integer(conf, "threshold"))
