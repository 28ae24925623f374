"""Outbound policies -> settings of the service's EDS cluster (pure).

Reads ``OutboundView.policies`` (merged ``default`` blocks per kind, camelCase JSON, see
``atoll.topology.policies``) and sets fields on the cluster, as Kuma's plugins do:

- **MeshHealthCheck** -> one active health check: HTTP for ``http``/``http2`` services (``path``,
  default ``/``; ``expectedStatuses``; ``requestHeadersToAdd``), gRPC for ``grpc``, TCP otherwise
  (``send``/``receive`` are base64 in the policy, hex in Envoy); a check type that is ``disabled``
  gives no check. ``interval`` (default 1m), ``timeout`` (15s), ``unhealthyThreshold`` (5),
  ``healthyThreshold`` (1), jitters, ``noTrafficInterval``, ``reuseConnection``,
  ``alwaysLogHealthCheckFailures``; ``healthyPanicThreshold``/``failTrafficOnPanic`` go to the
  cluster's ``common_lb_config``.
- **MeshCircuitBreaker** -> ``connectionLimits`` become the DEFAULT-priority thresholds;
  ``outlierDetection`` becomes ``outlier_detection`` (``disabled`` removes it). Detectors not
  named are switched off (their ``enforcing_*`` set to 0), named ones on (100), as Kuma does.
- **Cross-zone failover default**: a cluster with zone-ingress endpoints gets outlier detection
  even without a policy (``INGRESS_OUTLIER_DETECTION``: 3 consecutive 5xx or gateway failures —
  connect failures count as both — checked every second, ejected for 5 s, up to 100 % of hosts),
  so a zone whose ingress is unreachable stops getting traffic within seconds. A
  MeshCircuitBreaker ``outlierDetection`` for the service is merge-patched over this default.
- Inbound (``from[]``/``rules[]``) MeshCircuitBreaker and MeshTimeout ``connectionTimeout`` go to
  the local application's cluster (``apply_local_cluster_policies``).
- **MeshTimeout** -> cluster ``connect_timeout`` (``connectionTimeout``) and, for HTTP services,
  the upstream ``common_http_protocol_options`` (``idleTimeout``, ``http.maxStreamDuration``,
  ``http.maxConnectionDuration``); on the listener (outbound ``to[]``, inbound ``from[]``/``rules[]``)
  the route ``timeout`` (``http.requestTimeout``), the HCM's ``stream_idle_timeout``,
  ``request_headers_timeout`` and idle/duration limits, or tcp_proxy ``idle_timeout``.
- **MeshRetry** -> the route ``retry_policy`` (``http``, or ``grpc`` for gRPC services: conditions
  mapped to Envoy's ``retry_on`` names, status codes to ``retriable-status-codes``, ``HttpMethod*``
  to ``:method`` request-header matches, back-off, rate-limited back-off, ``OmitPreviousHosts``);
  ``tcp.maxConnectAttempt`` -> tcp_proxy ``max_connect_attempts``. With ``retryOn`` unset:
  ``DEFAULT_HTTP_RETRY_ON``/``DEFAULT_GRPC_RETRY_ON``.
- **MeshLoadBalancingStrategy** -> cluster ``lb_policy`` and its LeastRequest/RingHash/Maglev
  config, route ``hash_policy`` (``hashPolicies``), and locality awareness as priorities per zone
  in the ClusterLoadAssignment (``zone_priorities``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import base_pb2, health_check_pb2, protocol_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2, range_pb2
from google.protobuf import wrappers_pb2

from atoll.resources.base import parse_duration
from atoll.topology import InboundView, OutboundView, merge_patch
from atoll.xds.generate.envoy import HCM_FILTER, HTTP_PROTOCOL_OPTIONS_KEY, TCP_PROXY_FILTER, duration, pack

__all__ = [
    "DEFAULT_GRPC_RETRY_ON",
    "DEFAULT_HTTP_RETRY_ON",
    "INGRESS_OUTLIER_DETECTION",
    "apply_cluster_policies",
    "apply_inbound_policies",
    "apply_local_cluster_policies",
    "apply_outbound_listener_policies",
    "apply_outbound_policies",
    "circuit_breakers",
    "hash_policies",
    "health_check",
    "outlier_detection",
    "retry_policy",
    "zone_priorities",
]

INGRESS_OUTLIER_DETECTION: Mapping[str, Any] = {
    "interval": "1s",
    "baseEjectionTime": "5s",
    "maxEjectionPercent": 100,
    "detectors": {"totalFailures": {"consecutive": 3}, "gatewayFailures": {"consecutive": 3}},
}
"""The outlier detection of clusters that reach other zones through their ingresses (Kuma's conf shape)."""

_HC_DEFAULTS = {"interval": "1m", "timeout": "15s", "unhealthyThreshold": 5, "healthyThreshold": 1}


def _secs(value: Any) -> float:
    return parse_duration(str(value))


def _u32(value: Any) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=int(value))


def _hex(b64: str) -> str:
    return base64.b64decode(b64).hex()


def _percent(value: Any) -> percent_pb2.Percent:
    return percent_pb2.Percent(value=float(value))


def health_check(conf: Mapping[str, Any], protocol: str) -> health_check_pb2.HealthCheck | None:
    """The active health check of a MeshHealthCheck conf for a service of ``protocol``; None if disabled."""
    c = {**_HC_DEFAULTS, **conf}
    hc = health_check_pb2.HealthCheck(
        interval=duration(_secs(c["interval"])),
        timeout=duration(_secs(c["timeout"])),
        unhealthy_threshold=_u32(c["unhealthyThreshold"]),
        healthy_threshold=_u32(c["healthyThreshold"]),
    )
    if "initialJitter" in c:
        hc.initial_jitter.CopyFrom(duration(_secs(c["initialJitter"])))
    if "intervalJitter" in c:
        hc.interval_jitter.CopyFrom(duration(_secs(c["intervalJitter"])))
    if "intervalJitterPercent" in c:
        hc.interval_jitter_percent = int(c["intervalJitterPercent"])
    if "noTrafficInterval" in c:
        hc.no_traffic_interval.CopyFrom(duration(_secs(c["noTrafficInterval"])))
    if "reuseConnection" in c:
        hc.reuse_connection.CopyFrom(wrappers_pb2.BoolValue(value=bool(c["reuseConnection"])))
    if c.get("alwaysLogHealthCheckFailures"):
        hc.always_log_health_check_failures = True
    http, grpc, tcp = (c.get(k) or {} for k in ("http", "grpc", "tcp"))
    if protocol in ("http", "http2"):
        if http.get("disabled"):
            return None
        check = health_check_pb2.HealthCheck.HttpHealthCheck(path=http.get("path") or "/")
        for status in http.get("expectedStatuses") or ():
            check.expected_statuses.append(range_pb2.Int64Range(start=int(status), end=int(status) + 1))
        headers = http.get("requestHeadersToAdd") or {}
        for append, key in ((False, "set"), (True, "add")):
            for h in headers.get(key) or ():
                check.request_headers_to_add.append(
                    base_pb2.HeaderValueOption(
                        header=base_pb2.HeaderValue(key=h["name"], value=h["value"]),
                        append_action=base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
                        if append
                        else base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
                    )
                )
        if protocol == "http2":
            check.codec_client_type = 2  # envoy.type.v3.CodecClientType.HTTP2
        hc.http_health_check.CopyFrom(check)
    elif protocol == "grpc":
        if grpc.get("disabled"):
            return None
        hc.grpc_health_check.CopyFrom(
            health_check_pb2.HealthCheck.GrpcHealthCheck(
                service_name=grpc.get("serviceName", ""), authority=grpc.get("authority", "")
            )
        )
    else:
        if tcp.get("disabled"):
            return None
        check_tcp = health_check_pb2.HealthCheck.TcpHealthCheck()
        if tcp.get("send"):
            check_tcp.send.CopyFrom(health_check_pb2.HealthCheck.Payload(text=_hex(tcp["send"])))
        for r in tcp.get("receive") or ():
            check_tcp.receive.append(health_check_pb2.HealthCheck.Payload(text=_hex(r)))
        hc.tcp_health_check.CopyFrom(check_tcp)
    return hc


def circuit_breakers(limits: Mapping[str, Any]) -> circuit_breaker_pb2.CircuitBreakers:
    """``connectionLimits`` as the DEFAULT-priority thresholds."""
    t = circuit_breaker_pb2.CircuitBreakers.Thresholds(priority=base_pb2.DEFAULT)
    for key, field in (
        ("maxConnections", "max_connections"),
        ("maxPendingRequests", "max_pending_requests"),
        ("maxRequests", "max_requests"),
        ("maxRetries", "max_retries"),
    ):
        if key in limits:
            getattr(t, field).CopyFrom(_u32(limits[key]))
    if "maxConnectionPools" in limits:
        t.max_connection_pools.CopyFrom(_u32(limits["maxConnectionPools"]))
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[t])


def outlier_detection(conf: Mapping[str, Any]) -> outlier_detection_pb2.OutlierDetection | None:
    """A MeshCircuitBreaker ``outlierDetection`` as Envoy's; None when ``disabled``."""
    if conf.get("disabled"):
        return None
    od = outlier_detection_pb2.OutlierDetection()
    if "interval" in conf:
        od.interval.CopyFrom(duration(_secs(conf["interval"])))
    if "baseEjectionTime" in conf:
        od.base_ejection_time.CopyFrom(duration(_secs(conf["baseEjectionTime"])))
    if "maxEjectionPercent" in conf:
        od.max_ejection_percent.CopyFrom(_u32(conf["maxEjectionPercent"]))
    if conf.get("splitExternalAndLocalErrors"):
        od.split_external_local_origin_errors = True
    d = conf.get("detectors") or {}
    total, gateway, local = d.get("totalFailures"), d.get("gatewayFailures"), d.get("localOriginFailures")
    rate, pct = d.get("successRate"), d.get("failurePercentage")
    od.enforcing_consecutive_5xx.CopyFrom(_u32(100 if total is not None else 0))
    if total and "consecutive" in total:
        od.consecutive_5xx.CopyFrom(_u32(total["consecutive"]))
    od.enforcing_consecutive_gateway_failure.CopyFrom(_u32(100 if gateway is not None else 0))
    if gateway and "consecutive" in gateway:
        od.consecutive_gateway_failure.CopyFrom(_u32(gateway["consecutive"]))
    od.enforcing_consecutive_local_origin_failure.CopyFrom(_u32(100 if local is not None else 0))
    if local and "consecutive" in local:
        od.consecutive_local_origin_failure.CopyFrom(_u32(local["consecutive"]))
    od.enforcing_success_rate.CopyFrom(_u32(100 if rate is not None else 0))
    if rate:
        if "minimumHosts" in rate:
            od.success_rate_minimum_hosts.CopyFrom(_u32(rate["minimumHosts"]))
        if "requestVolume" in rate:
            od.success_rate_request_volume.CopyFrom(_u32(rate["requestVolume"]))
        if "standardDeviationFactor" in rate:
            od.success_rate_stdev_factor.CopyFrom(_u32(round(float(rate["standardDeviationFactor"]) * 1000)))
    od.enforcing_failure_percentage.CopyFrom(_u32(100 if pct is not None else 0))
    if pct:
        if "minimumHosts" in pct:
            od.failure_percentage_minimum_hosts.CopyFrom(_u32(pct["minimumHosts"]))
        if "requestVolume" in pct:
            od.failure_percentage_request_volume.CopyFrom(_u32(pct["requestVolume"]))
        if "threshold" in pct:
            od.failure_percentage_threshold.CopyFrom(_u32(pct["threshold"]))
    return od


def apply_outbound_policies(cluster: cluster_pb2.Cluster, ob: OutboundView) -> None:
    """Set on ``cluster`` (the EDS cluster of ``ob.service``, just built) what ``ob.policies`` say."""
    hc_conf = ob.policies.get("MeshHealthCheck")
    if hc_conf is not None:
        hc = health_check(hc_conf, ob.protocol)
        if hc is not None:
            cluster.health_checks.append(hc)
        if "healthyPanicThreshold" in hc_conf:
            cluster.common_lb_config.healthy_panic_threshold.CopyFrom(_percent(hc_conf["healthyPanicThreshold"]))
        if "failTrafficOnPanic" in hc_conf:
            cluster.common_lb_config.zone_aware_lb_config.fail_traffic_on_panic = bool(hc_conf["failTrafficOnPanic"])

    cb_conf = ob.policies.get("MeshCircuitBreaker") or {}
    if "connectionLimits" in cb_conf:
        cluster.circuit_breakers.CopyFrom(circuit_breakers(cb_conf["connectionLimits"]))
    od_conf: Any = cb_conf.get("outlierDetection")
    if any(ep.ingress for ep in ob.endpoints):
        od_conf = merge_patch(INGRESS_OUTLIER_DETECTION, od_conf or {})
    if od_conf is not None:
        od = outlier_detection(od_conf)
        if od is not None:
            cluster.outlier_detection.CopyFrom(od)
        if "healthyPanicThreshold" in od_conf:
            cluster.common_lb_config.healthy_panic_threshold.CopyFrom(_percent(od_conf["healthyPanicThreshold"]))
    apply_cluster_policies(cluster, ob)


# -- listeners: MeshTimeout (HTTP/TCP), MeshRetry, hash policies ------------------------------------


def _edit_filters(
    listener: listener_pb2.Listener,
    on_hcm: Callable[[hcm_pb2.HttpConnectionManager], None],
    on_tcp: Callable[[tcp_proxy_pb2.TcpProxy], None],
) -> None:
    for chain in listener.filter_chains:
        for f in chain.filters:
            if f.name == HCM_FILTER:
                manager = hcm_pb2.HttpConnectionManager()
                f.typed_config.Unpack(manager)
                on_hcm(manager)
                f.typed_config.CopyFrom(pack(manager))
            elif f.name == TCP_PROXY_FILTER:
                tcp = tcp_proxy_pb2.TcpProxy()
                f.typed_config.Unpack(tcp)
                on_tcp(tcp)
                f.typed_config.CopyFrom(pack(tcp))


def _routes(manager: hcm_pb2.HttpConnectionManager) -> list[route_components_pb2.Route]:
    return [r for vh in manager.route_config.virtual_hosts for r in vh.routes]


def _timeouts_on_hcm(manager: hcm_pb2.HttpConnectionManager, conf: Mapping[str, Any]) -> None:
    http = conf.get("http") or {}
    if "idleTimeout" in conf:
        manager.common_http_protocol_options.idle_timeout.CopyFrom(duration(_secs(conf["idleTimeout"])))
    if "streamIdleTimeout" in http:
        manager.stream_idle_timeout.CopyFrom(duration(_secs(http["streamIdleTimeout"])))
    if "requestHeadersTimeout" in http:
        manager.request_headers_timeout.CopyFrom(duration(_secs(http["requestHeadersTimeout"])))
    if "maxStreamDuration" in http:
        manager.common_http_protocol_options.max_stream_duration.CopyFrom(duration(_secs(http["maxStreamDuration"])))
    if "maxConnectionDuration" in http:
        manager.common_http_protocol_options.max_connection_duration.CopyFrom(
            duration(_secs(http["maxConnectionDuration"]))
        )
    for route in _routes(manager):
        if "requestTimeout" in http:
            route.route.timeout.CopyFrom(duration(_secs(http["requestTimeout"])))


def _timeouts_on_tcp(tcp: tcp_proxy_pb2.TcpProxy, conf: Mapping[str, Any]) -> None:
    if "idleTimeout" in conf:
        tcp.idle_timeout.CopyFrom(duration(_secs(conf["idleTimeout"])))


_HTTP_RETRY_ON = {
    "5xx": "5xx",
    "GatewayError": "gateway-error",
    "Reset": "reset",
    "Retriable4xx": "retriable-4xx",
    "ConnectFailure": "connect-failure",
    "EnvoyRatelimited": "envoy-ratelimited",
    "RefusedStream": "refused-stream",
    "Http3PostConnectFailure": "http3-post-connect-failure",
}
_GRPC_RETRY_ON = {
    "Canceled": "cancelled",
    "DeadlineExceeded": "deadline-exceeded",
    "Internal": "internal",
    "ResourceExhausted": "resource-exhausted",
    "Unavailable": "unavailable",
}
DEFAULT_HTTP_RETRY_ON = ("5xx", "GatewayError", "Reset", "ConnectFailure", "RefusedStream")
DEFAULT_GRPC_RETRY_ON = ("Canceled", "DeadlineExceeded", "ResourceExhausted", "Unavailable")


def _header_matcher(m: Mapping[str, Any]) -> route_components_pb2.HeaderMatcher:
    out = route_components_pb2.HeaderMatcher(name=m["name"])
    kind, value = m.get("type", "Exact"), m.get("value", "")
    if kind == "Exact":
        out.string_match.CopyFrom(string_pb2.StringMatcher(exact=value))
    elif kind == "Prefix":
        out.string_match.CopyFrom(string_pb2.StringMatcher(prefix=value))
    elif kind == "RegularExpression":
        out.string_match.CopyFrom(string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=value)))
    elif kind == "Present":
        out.present_match = True
    elif kind == "Absent":
        out.present_match = False
    return out


def retry_policy(conf: Mapping[str, Any], protocol: str) -> route_components_pb2.RetryPolicy | None:
    """A MeshRetry conf as the route's retry policy (``grpc`` block for gRPC services, else ``http``)."""
    block = conf.get("grpc" if protocol == "grpc" else "http")
    if not block:
        return None
    policy = route_components_pb2.RetryPolicy()
    if protocol == "grpc":
        conditions = [_GRPC_RETRY_ON[c] for c in block.get("retryOn") or DEFAULT_GRPC_RETRY_ON]
    else:
        conditions = []
        for c in block.get("retryOn") or DEFAULT_HTTP_RETRY_ON:
            if c in _HTTP_RETRY_ON:
                conditions.append(_HTTP_RETRY_ON[c])
            elif str(c).isdigit():
                policy.retriable_status_codes.append(int(c))
            elif str(c).startswith("HttpMethod"):
                method = str(c).removeprefix("HttpMethod").upper()
                policy.retriable_request_headers.append(
                    route_components_pb2.HeaderMatcher(
                        name=":method", string_match=string_pb2.StringMatcher(exact=method)
                    )
                )
        if policy.retriable_status_codes:
            conditions.append("retriable-status-codes")
        for m in block.get("retriableResponseHeaders") or ():
            policy.retriable_headers.append(_header_matcher(m))
        for m in block.get("retriableRequestHeaders") or ():
            policy.retriable_request_headers.append(_header_matcher(m))
        for pred in block.get("hostSelection") or ():
            if pred.get("predicate") == "OmitPreviousHosts":
                policy.retry_host_predicate.append(
                    route_components_pb2.RetryPolicy.RetryHostPredicate(
                        name="envoy.retry_host_predicates.previous_hosts",
                        typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate()),
                    )
                )
        if "hostSelectionMaxAttempts" in block:
            policy.host_selection_retry_max_attempts = int(block["hostSelectionMaxAttempts"])
    policy.retry_on = ",".join(dict.fromkeys(conditions))
    if "numRetries" in block:
        policy.num_retries.CopyFrom(_u32(block["numRetries"]))
    if "perTryTimeout" in block:
        policy.per_try_timeout.CopyFrom(duration(_secs(block["perTryTimeout"])))
    back_off = block.get("backOff") or {}
    if back_off:
        rb = route_components_pb2.RetryPolicy.RetryBackOff(
            base_interval=duration(_secs(back_off.get("baseInterval", "25ms")))
        )
        if "maxInterval" in back_off:
            rb.max_interval.CopyFrom(duration(_secs(back_off["maxInterval"])))
        policy.retry_back_off.CopyFrom(rb)
    limited = block.get("rateLimitedBackOff") or {}
    if limited.get("resetHeaders"):
        fmt = {
            "Seconds": route_components_pb2.RetryPolicy.SECONDS,
            "UnixTimestamp": route_components_pb2.RetryPolicy.UNIX_TIMESTAMP,
        }
        rl = route_components_pb2.RetryPolicy.RateLimitedRetryBackOff(
            reset_headers=[
                route_components_pb2.RetryPolicy.ResetHeader(name=h["name"], format=fmt[h["format"]])
                for h in limited["resetHeaders"]
            ]
        )
        if "maxInterval" in limited:
            rl.max_interval.CopyFrom(duration(_secs(limited["maxInterval"])))
        policy.rate_limited_retry_back_off.CopyFrom(rl)
    return policy


def hash_policies(items: Any) -> list[route_components_pb2.RouteAction.HashPolicy]:
    """MeshLoadBalancingStrategy ``hashPolicies`` (for RingHash/Maglev) as route hash policies."""
    out = []
    for h in items or ():
        hp = route_components_pb2.RouteAction.HashPolicy(terminal=bool(h.get("terminal", False)))
        kind = h.get("type")
        if kind == "Header":
            hp.header.CopyFrom(route_components_pb2.RouteAction.HashPolicy.Header(header_name=h["header"]["name"]))
        elif kind == "Cookie":
            cookie = route_components_pb2.RouteAction.HashPolicy.Cookie(name=h["cookie"]["name"])
            if "ttl" in h["cookie"]:
                cookie.ttl.CopyFrom(duration(_secs(h["cookie"]["ttl"])))
            if "path" in h["cookie"]:
                cookie.path = h["cookie"]["path"]
            hp.cookie.CopyFrom(cookie)
        elif kind == "Connection":
            hp.connection_properties.CopyFrom(
                route_components_pb2.RouteAction.HashPolicy.ConnectionProperties(
                    source_ip=bool((h.get("connection") or {}).get("sourceIP", True))
                )
            )
        elif kind == "QueryParameter":
            hp.query_parameter.CopyFrom(
                route_components_pb2.RouteAction.HashPolicy.QueryParameter(name=h["queryParameter"]["name"])
            )
        elif kind == "FilterState":
            hp.filter_state.CopyFrom(
                route_components_pb2.RouteAction.HashPolicy.FilterState(key=h["filterState"]["key"])
            )
        else:
            continue
        out.append(hp)
    return out


def apply_outbound_listener_policies(listener: listener_pb2.Listener, ob: OutboundView) -> None:
    """Set on the outbound ``listener`` of ``ob`` the route/HCM/tcp_proxy parts of its policies."""
    timeout = ob.policies.get("MeshTimeout") or {}
    retry = ob.policies.get("MeshRetry") or {}
    lb = ob.policies.get("MeshLoadBalancingStrategy") or {}
    balancer = lb.get("loadBalancer") or {}
    lb_hash = lb.get("hashPolicies") or (balancer.get(_LB_BLOCK.get(str(balancer.get("type")), "")) or {}).get(
        "hashPolicies"
    )

    def on_hcm(manager: hcm_pb2.HttpConnectionManager) -> None:
        _timeouts_on_hcm(manager, timeout)
        policy = retry_policy(retry, ob.protocol) if retry else None
        hashes = hash_policies(lb_hash)
        for route in _routes(manager):
            if policy is not None:
                route.route.retry_policy.CopyFrom(policy)
            route.route.hash_policy.extend(hashes)

    def on_tcp(tcp: tcp_proxy_pb2.TcpProxy) -> None:
        _timeouts_on_tcp(tcp, timeout)
        attempts = (retry.get("tcp") or {}).get("maxConnectAttempt")
        if attempts is not None:
            tcp.max_connect_attempts.CopyFrom(_u32(attempts))

    if timeout or retry or lb_hash:
        _edit_filters(listener, on_hcm, on_tcp)


def apply_local_cluster_policies(cluster: cluster_pb2.Cluster, ib: InboundView) -> None:
    """Inbound MeshCircuitBreaker (``from[]``/``rules[]``: connection limits, outlier detection)
    and MeshTimeout ``connectionTimeout`` on the local application's cluster of ``ib``."""
    cb = ib.policies.get("MeshCircuitBreaker") or {}
    if "connectionLimits" in cb:
        cluster.circuit_breakers.CopyFrom(circuit_breakers(cb["connectionLimits"]))
    if "outlierDetection" in cb:
        od = outlier_detection(cb["outlierDetection"])
        if od is not None:
            cluster.outlier_detection.CopyFrom(od)
    timeout = ib.policies.get("MeshTimeout") or {}
    if "connectionTimeout" in timeout:
        cluster.connect_timeout.CopyFrom(duration(_secs(timeout["connectionTimeout"])))


def apply_inbound_policies(listener: listener_pb2.Listener, ib: InboundView) -> None:
    """Set on the inbound ``listener`` of ``ib`` what its inbound MeshTimeout says."""
    timeout = ib.policies.get("MeshTimeout") or {}
    if timeout:
        _edit_filters(listener, lambda m: _timeouts_on_hcm(m, timeout), lambda t: _timeouts_on_tcp(t, timeout))


# -- clusters: MeshTimeout, MeshLoadBalancingStrategy ------------------------------------------------

_LB_BLOCK = {"LeastRequest": "leastRequest", "RingHash": "ringHash", "Maglev": "maglev"}
_LB_POLICY = {
    "RoundRobin": cluster_pb2.Cluster.ROUND_ROBIN,
    "LeastRequest": cluster_pb2.Cluster.LEAST_REQUEST,
    "RingHash": cluster_pb2.Cluster.RING_HASH,
    "Random": cluster_pb2.Cluster.RANDOM,
    "Maglev": cluster_pb2.Cluster.MAGLEV,
}


def _cluster_timeouts(cluster: cluster_pb2.Cluster, conf: Mapping[str, Any], protocol: str) -> None:
    if "connectionTimeout" in conf:
        cluster.connect_timeout.CopyFrom(duration(_secs(conf["connectionTimeout"])))
    http = conf.get("http") or {}
    if protocol not in ("http", "http2", "grpc"):
        return
    common = protocol_pb2.HttpProtocolOptions()
    if "idleTimeout" in conf:
        common.idle_timeout.CopyFrom(duration(_secs(conf["idleTimeout"])))
    if "maxStreamDuration" in http:
        common.max_stream_duration.CopyFrom(duration(_secs(http["maxStreamDuration"])))
    if "maxConnectionDuration" in http:
        common.max_connection_duration.CopyFrom(duration(_secs(http["maxConnectionDuration"])))
    if common.ByteSize() == 0:
        return
    opts = http_protocol_options_pb2.HttpProtocolOptions()
    existing = cluster.typed_extension_protocol_options.get(HTTP_PROTOCOL_OPTIONS_KEY)
    if existing is not None:
        existing.Unpack(opts)
    else:
        opts.explicit_http_config.http_protocol_options.CopyFrom(protocol_pb2.Http1ProtocolOptions())
    opts.common_http_protocol_options.CopyFrom(common)
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS_KEY].CopyFrom(pack(opts))


def _load_balancer(cluster: cluster_pb2.Cluster, conf: Mapping[str, Any]) -> None:
    lb = conf.get("loadBalancer") or {}
    kind = lb.get("type")
    if kind not in _LB_POLICY:
        return
    cluster.lb_policy = _LB_POLICY[kind]
    block = lb.get(_LB_BLOCK.get(kind, ""), None) or {}
    if kind == "LeastRequest":
        cfg = cluster_pb2.Cluster.LeastRequestLbConfig()
        if "choiceCount" in block:
            cfg.choice_count.CopyFrom(_u32(block["choiceCount"]))
        if "activeRequestBias" in block:
            cfg.active_request_bias.CopyFrom(
                base_pb2.RuntimeDouble(default_value=float(block["activeRequestBias"]), runtime_key="")
            )
        cluster.least_request_lb_config.CopyFrom(cfg)
    elif kind == "RingHash":
        ring = cluster_pb2.Cluster.RingHashLbConfig()
        if block.get("hashFunction") == "MurmurHash2":
            ring.hash_function = cluster_pb2.Cluster.RingHashLbConfig.MURMUR_HASH_2
        if "minRingSize" in block:
            ring.minimum_ring_size.value = int(block["minRingSize"])
        if "maxRingSize" in block:
            ring.maximum_ring_size.value = int(block["maxRingSize"])
        cluster.ring_hash_lb_config.CopyFrom(ring)
    elif kind == "Maglev" and "tableSize" in block:
        cluster.maglev_lb_config.table_size.value = int(block["tableSize"])


def zone_priorities(
    conf: Mapping[str, Any], local_zone: str, zones: Iterable[str], *, mesh_locality_aware: bool = False
) -> tuple[tuple[tuple[str, int], ...], int | None] | None:
    """Locality-aware load balancing as (zone -> priority) pairs and an overprovisioning factor, or
    None to keep every zone at priority 0 (weights only).

    MeshLoadBalancingStrategy ``localityAwareness`` (unless ``disabled``): the local zone is priority
    0; without ``crossZone.failover`` every other zone is priority 1; with it, rule i (whose ``from``
    is unset or lists the local zone) puts the zones it names (``Any``, ``Only`` zones, ``AnyExcept``
    zones, ``None``) that no earlier rule took at priority i+1, and zones no rule takes get no
    traffic (left out of the assignment). ``failoverThreshold.percentage`` p becomes Envoy's
    overprovisioning factor 100*100/p (fail over once less than p % of a priority is healthy).
    Without a policy, the Mesh's ``routing.localityAwareLoadBalancing`` gives local 0, others 1.
    """
    aware = conf.get("localityAwareness")
    if aware is None:
        if not mesh_locality_aware:
            return None
        aware = {}
    if aware.get("disabled"):
        return None
    others = sorted({z for z in zones if z != local_zone})
    cross = aware.get("crossZone") or {}
    prio: dict[str, int] = {local_zone: 0}
    failover = cross.get("failover")
    if not failover:
        prio.update({z: 1 for z in others})
    else:
        for i, rule in enumerate(failover):
            source = rule.get("from")
            if source is not None and local_zone not in (source.get("zones") or ()):
                continue
            to = rule.get("to") or {}
            kind, listed = to.get("type"), set(to.get("zones") or ())
            chosen = {
                "Any": set(others),
                "Only": set(others) & listed,
                "AnyExcept": set(others) - listed,
            }.get(str(kind), set())
            for z in sorted(chosen):
                prio.setdefault(z, i + 1)
    factor = None
    threshold = cross.get("failoverThreshold")
    if threshold is not None:
        pct = float(threshold["percentage"])
        factor = round(100 * 100 / pct) if pct > 0 else None
    return tuple(sorted(prio.items())), factor


def apply_cluster_policies(cluster: cluster_pb2.Cluster, ob: OutboundView) -> None:
    """MeshTimeout and MeshLoadBalancingStrategy settings of the EDS cluster of ``ob``."""
    _cluster_timeouts(cluster, ob.policies.get("MeshTimeout") or {}, ob.protocol)
    _load_balancer(cluster, ob.policies.get("MeshLoadBalancingStrategy") or {})
