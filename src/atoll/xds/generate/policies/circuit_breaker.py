"""MeshCircuitBreaker -> cluster thresholds and outlier detection (settings:
``atoll.topology.settings.circuit_breaker``).

``connection_limits`` become the DEFAULT-priority thresholds; ``outlier_detection`` becomes
``outlier_detection`` (``disabled`` removes it). Detectors not named are switched off (their
``enforcing_*`` set to 0), named ones on (100), as Kuma does.

**Cross-zone failover default**: a cluster with zone-ingress endpoints gets outlier detection even
without a policy (``INGRESS_OUTLIER_DETECTION``: 3 consecutive 5xx or gateway failures — connect
failures count as both — checked every second, ejected for 5 s, up to 100 % of hosts), so a zone
whose ingress is unreachable stops getting traffic within seconds. A policy's outlier detection
for the service is overlaid on this default (``atoll.topology.settings.conf.overlay``).
"""

from __future__ import annotations

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import base_pb2
from google.protobuf import wrappers_pb2

from atoll.topology.settings.circuit_breaker import (
    CircuitBreakerSettings,
    ConnectionLimits,
    Consecutive,
    Detectors,
    OutlierDetection,
    Volume,
)
from atoll.topology.settings.conf import overlay
from atoll.xds.generate.envoy import duration, percent, u32

__all__ = [
    "INGRESS_OUTLIER_DETECTION",
    "apply_circuit_breaker",
    "apply_local_circuit_breaker",
    "circuit_breakers",
    "outlier_detection",
]

INGRESS_OUTLIER_DETECTION = OutlierDetection(
    interval=1.0,
    base_ejection_time=5.0,
    max_ejection_percent=100,
    detectors=Detectors(total_failures=Consecutive(consecutive=3), gateway_failures=Consecutive(consecutive=3)),
)
"""The outlier detection of clusters that reach other zones through their ingresses."""


def circuit_breakers(limits: ConnectionLimits) -> circuit_breaker_pb2.CircuitBreakers:
    """``connectionLimits`` as the DEFAULT-priority thresholds."""
    t = circuit_breaker_pb2.CircuitBreakers.Thresholds(priority=base_pb2.DEFAULT)
    for value, target in (
        (limits.max_connections, t.max_connections),
        (limits.max_pending_requests, t.max_pending_requests),
        (limits.max_requests, t.max_requests),
        (limits.max_retries, t.max_retries),
        (limits.max_connection_pools, t.max_connection_pools),
    ):
        if value is not None:
            target.CopyFrom(u32(value))
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[t])


def _set(target: wrappers_pb2.UInt32Value, value: int | None) -> None:
    if value is not None:
        target.CopyFrom(u32(value))


def _enforcing(target: wrappers_pb2.UInt32Value, detector: object | None) -> None:
    target.CopyFrom(u32(100 if detector is not None else 0))


def _volume(hosts: wrappers_pb2.UInt32Value, requests: wrappers_pb2.UInt32Value, volume: Volume) -> None:
    _set(hosts, volume.minimum_hosts)
    _set(requests, volume.request_volume)


def outlier_detection(conf: OutlierDetection) -> outlier_detection_pb2.OutlierDetection | None:
    """A MeshCircuitBreaker ``outlierDetection`` as Envoy's; None when ``disabled``."""
    if conf.disabled:
        return None
    od = outlier_detection_pb2.OutlierDetection()
    if conf.interval is not None:
        od.interval.CopyFrom(duration(conf.interval))
    if conf.base_ejection_time is not None:
        od.base_ejection_time.CopyFrom(duration(conf.base_ejection_time))
    _set(od.max_ejection_percent, conf.max_ejection_percent)
    if conf.split_external_and_local_errors:
        od.split_external_local_origin_errors = True
    d = conf.detectors
    for detector, enforcing, consecutive in (
        (d.total_failures, od.enforcing_consecutive_5xx, od.consecutive_5xx),
        (d.gateway_failures, od.enforcing_consecutive_gateway_failure, od.consecutive_gateway_failure),
        (d.local_origin_failures, od.enforcing_consecutive_local_origin_failure, od.consecutive_local_origin_failure),
    ):
        _enforcing(enforcing, detector)
        _set(consecutive, detector.consecutive if detector is not None else None)
    rate, pct = d.success_rate, d.failure_percentage
    _enforcing(od.enforcing_success_rate, rate)
    if rate is not None:
        _volume(od.success_rate_minimum_hosts, od.success_rate_request_volume, rate)
        factor = rate.standard_deviation_factor
        _set(od.success_rate_stdev_factor, None if factor is None else round(factor * 1000))
    _enforcing(od.enforcing_failure_percentage, pct)
    if pct is not None:
        _volume(od.failure_percentage_minimum_hosts, od.failure_percentage_request_volume, pct)
        _set(od.failure_percentage_threshold, pct.threshold)
    return od


def apply_circuit_breaker(
    cluster: cluster_pb2.Cluster, cb: CircuitBreakerSettings | None, *, cross_zone: bool = False
) -> None:
    """The outbound cluster's thresholds and outlier detection (over the cross-zone default when
    ``cross_zone``: the service has zone-ingress endpoints), and the outlier detection's
    ``healthyPanicThreshold`` on the cluster's balancer."""
    if cb is not None and cb.connection_limits is not None:
        cluster.circuit_breakers.CopyFrom(circuit_breakers(cb.connection_limits))
    detection = cb.outlier_detection if cb is not None else None
    if cross_zone:
        detection = overlay(INGRESS_OUTLIER_DETECTION, detection)
    if detection is None:
        return
    od = outlier_detection(detection)
    if od is not None:
        cluster.outlier_detection.CopyFrom(od)
    if detection.healthy_panic_threshold is not None:
        cluster.common_lb_config.healthy_panic_threshold.CopyFrom(percent(detection.healthy_panic_threshold))


def apply_local_circuit_breaker(cluster: cluster_pb2.Cluster, cb: CircuitBreakerSettings) -> None:
    """An inbound's (``from[]``/``rules[]``) thresholds and outlier detection on its local cluster."""
    if cb.connection_limits is not None:
        cluster.circuit_breakers.CopyFrom(circuit_breakers(cb.connection_limits))
    if cb.outlier_detection is not None:
        od = outlier_detection(cb.outlier_detection)
        if od is not None:
            cluster.outlier_detection.CopyFrom(od)
