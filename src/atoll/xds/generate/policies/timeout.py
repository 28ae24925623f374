"""MeshTimeout -> Envoy timeouts (settings: ``atoll.topology.settings.timeout``).

On listeners (outbound ``to[]``, inbound ``from[]``/``rules[]``): the route ``timeout``
(``http.requestTimeout``), the HCM's ``stream_idle_timeout``, ``request_headers_timeout`` and its
``common_http_protocol_options`` (``idleTimeout``, ``http.maxStreamDuration``,
``http.maxConnectionDuration``), or tcp_proxy ``idle_timeout``. On clusters: ``connect_timeout``
(``connectionTimeout``) and, for HTTP services, the upstream ``common_http_protocol_options``.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import protocol_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from atoll.topology.settings.timeout import TimeoutSettings
from atoll.xds.generate.envoy import HTTP_PROTOCOL_OPTIONS_KEY, duration, pack, routes

__all__ = ["cluster_timeouts", "connect_timeout", "timeouts_on_hcm", "timeouts_on_tcp"]


def _common_http(common: protocol_pb2.HttpProtocolOptions, t: TimeoutSettings) -> None:
    """The idle and duration limits shared by downstream (HCM) and upstream (cluster) HTTP options."""
    for value, target in (
        (t.idle_timeout, common.idle_timeout),
        (t.http.max_stream_duration, common.max_stream_duration),
        (t.http.max_connection_duration, common.max_connection_duration),
    ):
        if value is not None:
            target.CopyFrom(duration(value))


def timeouts_on_hcm(manager: hcm_pb2.HttpConnectionManager, t: TimeoutSettings) -> None:
    """The HCM's and its routes' timeouts."""
    _common_http(manager.common_http_protocol_options, t)
    if t.http.stream_idle_timeout is not None:
        manager.stream_idle_timeout.CopyFrom(duration(t.http.stream_idle_timeout))
    if t.http.request_headers_timeout is not None:
        manager.request_headers_timeout.CopyFrom(duration(t.http.request_headers_timeout))
    if t.http.request_timeout is not None:
        for route in routes(manager):
            route.route.timeout.CopyFrom(duration(t.http.request_timeout))


def timeouts_on_tcp(tcp: tcp_proxy_pb2.TcpProxy, t: TimeoutSettings) -> None:
    if t.idle_timeout is not None:
        tcp.idle_timeout.CopyFrom(duration(t.idle_timeout))


def connect_timeout(cluster: cluster_pb2.Cluster, t: TimeoutSettings) -> None:
    if t.connection_timeout is not None:
        cluster.connect_timeout.CopyFrom(duration(t.connection_timeout))


def cluster_timeouts(cluster: cluster_pb2.Cluster, t: TimeoutSettings, protocol: str) -> None:
    """``connect_timeout``, and for HTTP services the upstream idle/duration limits (merged into the
    cluster's HttpProtocolOptions, keeping its HTTP/1 or HTTP/2 choice)."""
    connect_timeout(cluster, t)
    if protocol not in ("http", "http2", "grpc"):
        return
    common = protocol_pb2.HttpProtocolOptions()
    _common_http(common, t)
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
