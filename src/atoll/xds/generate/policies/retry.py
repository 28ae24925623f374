"""MeshRetry -> the route ``retry_policy`` and tcp_proxy ``max_connect_attempts`` (settings:
``atoll.topology.settings.retry``).

The ``http`` block (or ``grpc`` for gRPC services): conditions mapped to Envoy's ``retry_on`` names,
status codes to ``retriable-status-codes``, ``HttpMethod*`` to ``:method`` request-header matches,
back-off, rate-limited back-off, ``OmitPreviousHosts``. With ``retryOn`` unset:
``DEFAULT_HTTP_RETRY_ON``/``DEFAULT_GRPC_RETRY_ON``. ``tcp.maxConnectAttempt`` -> tcp_proxy.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2
from envoy.config.route.v3.route_components_pb2 import RetryPolicy
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2

from atoll.topology.settings.retry import HeaderMatch, RetryBlock, RetrySettings
from atoll.xds.generate.envoy import duration, pack, u32

__all__ = ["DEFAULT_GRPC_RETRY_ON", "DEFAULT_HTTP_RETRY_ON", "retry_policy"]

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
_RESET_FORMAT = {"Seconds": RetryPolicy.SECONDS, "UnixTimestamp": RetryPolicy.UNIX_TIMESTAMP}
DEFAULT_HTTP_RETRY_ON = ("5xx", "GatewayError", "Reset", "ConnectFailure", "RefusedStream")
DEFAULT_GRPC_RETRY_ON = ("Canceled", "DeadlineExceeded", "ResourceExhausted", "Unavailable")


def _header_matcher(m: HeaderMatch) -> route_components_pb2.HeaderMatcher:
    out = route_components_pb2.HeaderMatcher(name=m.name)
    if m.type == "Exact":
        out.string_match.CopyFrom(string_pb2.StringMatcher(exact=m.value))
    elif m.type == "Prefix":
        out.string_match.CopyFrom(string_pb2.StringMatcher(prefix=m.value))
    elif m.type == "RegularExpression":
        out.string_match.CopyFrom(string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=m.value)))
    elif m.type == "Present":
        out.present_match = True
    elif m.type == "Absent":
        out.present_match = False
    return out


def _http_conditions(policy: RetryPolicy, block: RetryBlock) -> list[str]:
    """Envoy's ``retry_on`` names of the HTTP conditions; status codes, methods, header matches and
    host predicates are set on ``policy``."""
    conditions = []
    for c in block.retry_on or DEFAULT_HTTP_RETRY_ON:
        if c in _HTTP_RETRY_ON:
            conditions.append(_HTTP_RETRY_ON[c])
        elif c.isdigit():
            policy.retriable_status_codes.append(int(c))
        elif c.startswith("HttpMethod"):
            method = c.removeprefix("HttpMethod").upper()
            policy.retriable_request_headers.append(
                route_components_pb2.HeaderMatcher(name=":method", string_match=string_pb2.StringMatcher(exact=method))
            )
    if policy.retriable_status_codes:
        conditions.append("retriable-status-codes")
    policy.retriable_headers.extend(_header_matcher(m) for m in block.retriable_response_headers)
    policy.retriable_request_headers.extend(_header_matcher(m) for m in block.retriable_request_headers)
    for predicate in block.host_selection:
        if predicate == "OmitPreviousHosts":
            policy.retry_host_predicate.append(
                RetryPolicy.RetryHostPredicate(
                    name="envoy.retry_host_predicates.previous_hosts",
                    typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate()),
                )
            )
    if block.host_selection_max_attempts is not None:
        policy.host_selection_retry_max_attempts = block.host_selection_max_attempts
    return conditions


def retry_policy(conf: RetrySettings, protocol: str) -> RetryPolicy | None:
    """A MeshRetry as the route's retry policy (``grpc`` block for gRPC services, else ``http``)."""
    block = conf.grpc if protocol == "grpc" else conf.http
    if block is None:
        return None
    policy = RetryPolicy()
    if protocol == "grpc":
        conditions = [_GRPC_RETRY_ON[c] for c in block.retry_on or DEFAULT_GRPC_RETRY_ON]
    else:
        conditions = _http_conditions(policy, block)
    policy.retry_on = ",".join(dict.fromkeys(conditions))
    if block.num_retries is not None:
        policy.num_retries.CopyFrom(u32(block.num_retries))
    if block.per_try_timeout is not None:
        policy.per_try_timeout.CopyFrom(duration(block.per_try_timeout))
    if block.back_off is not None:
        rb = RetryPolicy.RetryBackOff(base_interval=duration(block.back_off.base_interval))
        if block.back_off.max_interval is not None:
            rb.max_interval.CopyFrom(duration(block.back_off.max_interval))
        policy.retry_back_off.CopyFrom(rb)
    limited = block.rate_limited_back_off
    if limited is not None:
        rl = RetryPolicy.RateLimitedRetryBackOff(
            reset_headers=[
                RetryPolicy.ResetHeader(name=h.name, format=_RESET_FORMAT[h.format]) for h in limited.reset_headers
            ]
        )
        if limited.max_interval is not None:
            rl.max_interval.CopyFrom(duration(limited.max_interval))
        policy.rate_limited_retry_back_off.CopyFrom(rl)
    return policy
