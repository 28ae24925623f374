"""MeshHealthCheck -> one active health check on the outbound cluster (settings:
``atoll.topology.settings.health_check``).

HTTP for ``http``/``http2`` services (``path``, ``expectedStatuses``, ``requestHeadersToAdd``; HTTP/2
codec for ``http2``), gRPC for ``grpc``, TCP otherwise (``send``/``receive`` are base64 in the policy,
hex in Envoy); a check type that is ``disabled`` gives no check. Intervals, thresholds, jitters,
``noTrafficInterval``, ``reuseConnection``, ``alwaysLogHealthCheckFailures`` go on the check;
``healthyPanicThreshold``/``failTrafficOnPanic`` go to the cluster's ``common_lb_config``.
"""

from __future__ import annotations

import base64

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.type.v3 import range_pb2
from google.protobuf import wrappers_pb2

from atoll.topology.settings.health_check import HealthCheckSettings, HttpCheck, TcpCheck
from atoll.xds.generate.envoy import duration, percent, u32

__all__ = ["apply_health_check", "health_check"]

_HTTP2_CODEC = 2  # envoy.type.v3.CodecClientType.HTTP2


def _hex(b64: str) -> str:
    return base64.b64decode(b64).hex()


def _http_check(http: HttpCheck, protocol: str) -> health_check_pb2.HealthCheck.HttpHealthCheck:
    check = health_check_pb2.HealthCheck.HttpHealthCheck(path=http.path)
    for status in http.expected_statuses:
        check.expected_statuses.append(range_pb2.Int64Range(start=status, end=status + 1))
    for headers, action in (
        (http.headers_to_set, base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD),
        (http.headers_to_add, base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD),
    ):
        for name, value in headers:
            check.request_headers_to_add.append(
                base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=name, value=value), append_action=action)
            )
    if protocol == "http2":
        check.codec_client_type = _HTTP2_CODEC
    return check


def _tcp_check(tcp: TcpCheck) -> health_check_pb2.HealthCheck.TcpHealthCheck:
    check = health_check_pb2.HealthCheck.TcpHealthCheck()
    if tcp.send is not None:
        check.send.CopyFrom(health_check_pb2.HealthCheck.Payload(text=_hex(tcp.send)))
    for r in tcp.receive:
        check.receive.append(health_check_pb2.HealthCheck.Payload(text=_hex(r)))
    return check


def health_check(conf: HealthCheckSettings, protocol: str) -> health_check_pb2.HealthCheck | None:
    """The active health check of a MeshHealthCheck for a service of ``protocol``; None if disabled."""
    hc = health_check_pb2.HealthCheck(
        interval=duration(conf.interval),
        timeout=duration(conf.timeout),
        unhealthy_threshold=u32(conf.unhealthy_threshold),
        healthy_threshold=u32(conf.healthy_threshold),
    )
    if conf.initial_jitter is not None:
        hc.initial_jitter.CopyFrom(duration(conf.initial_jitter))
    if conf.interval_jitter is not None:
        hc.interval_jitter.CopyFrom(duration(conf.interval_jitter))
    if conf.interval_jitter_percent is not None:
        hc.interval_jitter_percent = conf.interval_jitter_percent
    if conf.no_traffic_interval is not None:
        hc.no_traffic_interval.CopyFrom(duration(conf.no_traffic_interval))
    if conf.reuse_connection is not None:
        hc.reuse_connection.CopyFrom(wrappers_pb2.BoolValue(value=conf.reuse_connection))
    if conf.always_log_health_check_failures:
        hc.always_log_health_check_failures = True
    if protocol in ("http", "http2"):
        if conf.http.disabled:
            return None
        hc.http_health_check.CopyFrom(_http_check(conf.http, protocol))
    elif protocol == "grpc":
        if conf.grpc.disabled:
            return None
        hc.grpc_health_check.CopyFrom(
            health_check_pb2.HealthCheck.GrpcHealthCheck(
                service_name=conf.grpc.service_name, authority=conf.grpc.authority
            )
        )
    else:
        if conf.tcp.disabled:
            return None
        hc.tcp_health_check.CopyFrom(_tcp_check(conf.tcp))
    return hc


def apply_health_check(cluster: cluster_pb2.Cluster, conf: HealthCheckSettings, protocol: str) -> None:
    """The health check and the panic settings of a MeshHealthCheck on the outbound ``cluster``."""
    hc = health_check(conf, protocol)
    if hc is not None:
        cluster.health_checks.append(hc)
    if conf.healthy_panic_threshold is not None:
        cluster.common_lb_config.healthy_panic_threshold.CopyFrom(percent(conf.healthy_panic_threshold))
    if conf.fail_traffic_on_panic is not None:
        cluster.common_lb_config.zone_aware_lb_config.fail_traffic_on_panic = conf.fail_traffic_on_panic
