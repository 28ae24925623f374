"""MeshRateLimit -> Envoy local rate limits on an inbound (settings:
``atoll.topology.settings.rate_limit``).

HTTP (``local.http``, on HTTP inbounds): the HCM gets an ``envoy.filters.http.local_ratelimit``
filter ahead of the router (after the fault filters, Kuma's plugin order) with only a stat prefix,
and every route of the inbound its limit in ``typed_per_filter_config``: a token bucket of
``num`` tokens refilled with ``num`` every ``interval``, enabled and enforced for 100 % of requests,
the ``onRateLimit`` status (Envoy's 429 when unset) and headers (``add`` appends, ``set`` replaces).
TCP (``local.tcp``, on any inbound, as Kuma): an ``envoy.filters.network.local_ratelimit`` network
filter first in every filter chain, a token bucket of connections; a connection past it is closed
at once. Nothing is added for a limit that is ``disabled`` or has no rate.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2 as http_rl_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.local_ratelimit.v3 import local_rate_limit_pb2 as tcp_rl_pb2
from envoy.type.v3 import http_status_pb2, percent_pb2, token_bucket_pb2

from atoll.topology.settings.rate_limit import HttpRateLimit, Rate, TcpRateLimit
from atoll.xds.generate.envoy import duration, pack, routes, u32

__all__ = ["HTTP_RATE_LIMIT_FILTER", "TCP_RATE_LIMIT_FILTER", "http_rate_limit", "tcp_rate_limit_filter"]

HTTP_RATE_LIMIT_FILTER = "envoy.filters.http.local_ratelimit"
TCP_RATE_LIMIT_FILTER = "envoy.filters.network.local_ratelimit"
_ALL = percent_pb2.FractionalPercent(numerator=100, denominator=percent_pb2.FractionalPercent.HUNDRED)


def _bucket(rate: Rate) -> token_bucket_pb2.TokenBucket:
    return token_bucket_pb2.TokenBucket(
        max_tokens=rate.num, tokens_per_fill=u32(rate.num), fill_interval=duration(rate.interval)
    )


def _header(name: str, value: str, action: base_pb2.HeaderValueOption.HeaderAppendAction) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=name, value=value), append_action=action)


def _route_limit(limit: HttpRateLimit, rate: Rate) -> http_rl_pb2.LocalRateLimit:
    config = http_rl_pb2.LocalRateLimit(stat_prefix="rate_limit", token_bucket=_bucket(rate))
    config.filter_enabled.default_value.CopyFrom(_ALL)
    config.filter_enabled.runtime_key = "local_rate_limit_enabled"
    config.filter_enforced.default_value.CopyFrom(_ALL)
    config.filter_enforced.runtime_key = "local_rate_limit_enforced"
    if limit.status is not None:
        config.status.CopyFrom(http_status_pb2.HttpStatus(code=limit.status))
    add, overwrite = (
        base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD,
        base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )
    config.response_headers_to_add.extend(_header(n, v, add) for n, v in limit.add_headers)
    config.response_headers_to_add.extend(_header(n, v, overwrite) for n, v in limit.set_headers)
    return config


def http_rate_limit(manager: hcm_pb2.HttpConnectionManager, limit: HttpRateLimit) -> hcm_pb2.HttpFilter | None:
    """Set ``limit`` on every route of ``manager``; the HCM filter to add (None: nothing to limit)."""
    if not limit.active or limit.rate is None:
        return None
    per_route = pack(_route_limit(limit, limit.rate))
    for route in routes(manager):
        route.typed_per_filter_config[HTTP_RATE_LIMIT_FILTER].CopyFrom(per_route)
    return hcm_pb2.HttpFilter(
        name=HTTP_RATE_LIMIT_FILTER, typed_config=pack(http_rl_pb2.LocalRateLimit(stat_prefix="rate_limit"))
    )


def tcp_rate_limit_filter(limit: TcpRateLimit) -> listener_components_pb2.Filter | None:
    """The network filter of a connection rate limit (None: nothing to limit)."""
    if not limit.active or limit.rate is None:
        return None
    config = tcp_rl_pb2.LocalRateLimit(stat_prefix="tcp_rate_limit", token_bucket=_bucket(limit.rate))
    return listener_components_pb2.Filter(name=TCP_RATE_LIMIT_FILTER, typed_config=pack(config))
