"""MeshFaultInjection -> Envoy HTTP fault filters on an inbound (settings:
``atoll.topology.settings.fault_injection``).

Each fault of each ``FaultRule`` becomes one ``envoy.filters.http.fault`` filter, ahead of the
router, in the rules' order and, within a rule, in the order the user listed the faults (Envoy runs
them one after another: a fault's percentage applies to what the ones before let through, as Kuma
documents). A rule that tells callers apart gets header matchers on ``x-kuma-tags``: its source's
pattern, and one inverted pattern per later source (``treat_missing_header_as_empty``: a caller
that sent no tags matches no source, so it gets the rules for every caller). A rule by SPIFFE ID
(and every rule that must exclude such callers) gets the same on ``x-forwarded-client-cert``.

Why that header: Envoy's fault filter can only match request headers, and the caller's identity is
its mTLS certificate. ``read_caller_identity`` makes the inbound's HTTP connection manager write
the certificate's URI SANs into ``x-forwarded-client-cert`` (``SANITIZE_SET``: it replaces any
value the caller sent, and removes it on a connection without a client certificate) before the
filters run, so the value cannot be forged, and the route removes it before the application
(which sees what it saw before). Per-identity filter chains cannot work (a TLS filter chain
cannot match the client certificate), and a per-route copy of the faults matching filter state
would need a network filter that reads the certificate after the handshake. Only ``http`` and
``http2`` inbounds get faults, as in Kuma (not ``grpc``, not TCP).

Percentages become Envoy's ``FractionalPercent`` over the smallest exact denominator: an integer
over 100, two decimals over 10 000, more over 1 000 000 (rounded). The caller's side is
``tag_caller``: the outbound route configuration sets ``x-kuma-tags`` to the proxy's tags; the
inbound one removes it before the application (``strip_caller_tags``).
"""

from __future__ import annotations

from decimal import Decimal

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2

from atoll.topology.settings.fault_injection import (
    CLIENT_CERT_HEADER,
    TAGS_HEADER,
    Fault,
    FaultInjectionSettings,
    FaultRule,
    identity_regex,
    source_regex,
)
from atoll.xds.generate.envoy import duration, pack

__all__ = [
    "FAULT_FILTER",
    "FAULT_PROTOCOLS",
    "fault_filters",
    "fractional_percent",
    "read_caller_identity",
    "strip_caller_tags",
    "tag_caller",
]

FAULT_FILTER = "envoy.filters.http.fault"
FAULT_PROTOCOLS = frozenset({"http", "http2"})

_DENOMINATORS = (
    (1, percent_pb2.FractionalPercent.HUNDRED),
    (100, percent_pb2.FractionalPercent.TEN_THOUSAND),
    (10_000, percent_pb2.FractionalPercent.MILLION),
)


def fractional_percent(percentage: str) -> percent_pb2.FractionalPercent:
    """``"2.5"`` -> 250/10 000, ``"50"`` -> 50/100, ``"33.3333"`` -> 333 333/1 000 000."""
    value = Decimal(percentage)
    for scale, denominator in _DENOMINATORS:
        scaled = value * scale
        if scaled == scaled.to_integral_value() or scale == _DENOMINATORS[-1][0]:
            return percent_pb2.FractionalPercent(numerator=int(scaled.to_integral_value()), denominator=denominator)
    raise AssertionError("unreachable")


def _matcher(regex: str, *, invert: bool, header: str = TAGS_HEADER) -> route_components_pb2.HeaderMatcher:
    return route_components_pb2.HeaderMatcher(
        name=header,
        string_match=string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=regex)),
        invert_match=invert,
        treat_missing_header_as_empty=True,
    )


def _headers(rule: FaultRule) -> list[route_components_pb2.HeaderMatcher]:
    out = [_matcher(source_regex(rule.source), invert=False)] if rule.source else []
    out.extend(_matcher(source_regex(other), invert=True) for other in rule.not_sources)
    if rule.identity is not None:
        out.append(_matcher(identity_regex(rule.identity), invert=False, header=CLIENT_CERT_HEADER))
    out.extend(_matcher(identity_regex(m), invert=True, header=CLIENT_CERT_HEADER) for m in rule.not_identities)
    return out


def _fault(fault: Fault, headers: list[route_components_pb2.HeaderMatcher]) -> hcm_pb2.HttpFilter:
    config = fault_pb2.HTTPFault(headers=headers)
    if fault.abort_status is not None and fault.abort_percentage is not None:
        config.abort.http_status = fault.abort_status
        config.abort.percentage.CopyFrom(fractional_percent(fault.abort_percentage))
    if fault.delay is not None and fault.delay_percentage is not None:
        config.delay.fixed_delay.CopyFrom(duration(fault.delay))
        config.delay.percentage.CopyFrom(fractional_percent(fault.delay_percentage))
    if fault.bandwidth_kbps is not None and fault.bandwidth_percentage is not None:
        limit = config.response_rate_limit
        limit.fixed_limit.CopyFrom(common_fault_pb2.FaultRateLimit.FixedLimit(limit_kbps=fault.bandwidth_kbps))
        limit.percentage.CopyFrom(fractional_percent(fault.bandwidth_percentage))
    return hcm_pb2.HttpFilter(name=FAULT_FILTER, typed_config=pack(config))


def fault_filters(settings: FaultInjectionSettings) -> list[hcm_pb2.HttpFilter]:
    """The fault filters of an inbound's settings, in order (see the module docstring)."""
    out: list[hcm_pb2.HttpFilter] = []
    for rule in settings.rules:
        headers = _headers(rule)
        out.extend(_fault(f, headers) for f in rule.faults)
    return out


def tag_caller(manager: hcm_pb2.HttpConnectionManager, caller_tags: str) -> None:
    """Outbound: every request carries ``x-kuma-tags: <caller_tags>`` (replacing one the app set)."""
    manager.route_config.request_headers_to_add.append(
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=TAGS_HEADER, value=caller_tags.replace("%", "%%")),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
        )
    )


def strip_caller_tags(manager: hcm_pb2.HttpConnectionManager) -> None:
    """Inbound: the application does not see ``x-kuma-tags``."""
    manager.route_config.request_headers_to_remove.append(TAGS_HEADER)


def read_caller_identity(manager: hcm_pb2.HttpConnectionManager) -> None:
    """Inbound: ``x-forwarded-client-cert`` carries the caller certificate's URI SANs for the
    fault filters (set by Envoy, never the caller's) and is removed before the application."""
    manager.forward_client_cert_details = hcm_pb2.HttpConnectionManager.SANITIZE_SET
    manager.set_current_client_cert_details.uri = True
    manager.route_config.request_headers_to_remove.append(CLIENT_CERT_HEADER)
