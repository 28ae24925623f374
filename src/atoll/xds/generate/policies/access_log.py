"""MeshAccessLog -> Envoy access logs on a listener's HCM or tcp_proxy (settings:
``atoll.topology.settings.access_log``).

Every backend becomes one ``envoy.access_loggers.file`` access log, appended to the HCM (HTTP
listeners) or the tcp_proxy (TCP listeners) of every filter chain of the listener:

- ``File``: written to the backend's path;
- ``Tcp``: written, one JSON object per line (``{"address": "host:port", "message": ...}``), to the
  proxy's access-log pipe (``access_log_pipe``: a FIFO the data plane agent creates and reads,
  ``atoll.dp.access_log``), and the agent sends each message to the address over TCP, as Kuma's
  data plane does.

Formats: a ``plain`` template gets a newline appended (one entry per line); ``json`` pairs become a
JSON object per line; no format means Kuma's default for the listener (``DEFAULT_HTTP_FORMAT`` or
``DEFAULT_TCP_FORMAT``). Kuma's placeholders are substituted here, at generation time, from the
``LogContext`` of the listener; every other ``%...%`` is an Envoy command operator and passes
through (an operator Envoy does not know is refused by Envoy: a NACK of that listener).

``LogContext`` (Kuma's values): the mesh; the source service (the proxy's first inbound service on
outbound listeners, ``unknown`` on inbound ones); the destination service (the outbound's service,
or the inbound's own); the source address (the proxy's address, with and without ``:0``); the
direction (``OUTBOUND``/``INBOUND``). The generators build listeners memoized per view; access logs
are added to a copy for the proxies that have them (the context names the proxy).
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2, substitution_format_string_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from google.protobuf import struct_pb2

from atoll.topology import ProxyView
from atoll.topology.settings.access_log import AccessLogSettings, LogBackend, LogFormat
from atoll.xds.generate.envoy import edit_filters, pack

__all__ = [
    "DEFAULT_HTTP_FORMAT",
    "DEFAULT_TCP_FORMAT",
    "FILE_ACCESS_LOG",
    "UNKNOWN_SERVICE",
    "LogContext",
    "access_log_pipe",
    "apply_access_log",
    "interpolate",
]

FILE_ACCESS_LOG = "envoy.access_loggers.file"
UNKNOWN_SERVICE = "unknown"
PIPE_DIR = "/tmp"

# Kuma's default formats (the fields and their order are what Kuma users' log parsers expect).
DEFAULT_HTTP_FORMAT = (
    '[%START_TIME%] %KUMA_MESH% "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-B3-TRACEID?X-DATADOG-TRACEID)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" '
    '"%KUMA_SOURCE_SERVICE%" "%KUMA_DESTINATION_SERVICE%" "%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%" "%UPSTREAM_HOST%"'
)
DEFAULT_TCP_FORMAT = (
    "[%START_TIME%] %RESPONSE_FLAGS% %KUMA_MESH% "
    "%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%(%KUMA_SOURCE_SERVICE%)->%UPSTREAM_HOST%(%KUMA_DESTINATION_SERVICE%) "
    "took %DURATION%ms, sent %BYTES_SENT% bytes, received: %BYTES_RECEIVED% bytes"
)


def access_log_pipe(mesh: str, proxy: str) -> str:
    """The FIFO a proxy's Tcp access-log backends write to (created and read by its agent)."""
    return f"{PIPE_DIR}/atoll-accesslog-{mesh}-{proxy}.pipe"


@dataclass(frozen=True, slots=True)
class LogContext:
    """The values of Kuma's placeholders for one listener of one proxy."""

    mesh: str
    proxy: str
    source_service: str
    destination_service: str
    source_ip: str
    direction: str
    """``INBOUND`` or ``OUTBOUND`` (``base_pb2.TrafficDirection`` names)."""

    @classmethod
    def of(cls, view: ProxyView, direction: int, service: str) -> LogContext:
        """The values of the listener of ``view`` for ``service`` in ``direction`` (``base_pb2``'s):
        outbound logs name the proxy's first inbound service as source, inbound logs an unknown one."""
        if direction == base_pb2.INBOUND or not view.inbounds:
            source = UNKNOWN_SERVICE
        else:
            source = view.inbounds[0].service
        name = base_pb2.TrafficDirection.Name(direction)
        return cls(view.mesh, view.name, source, service, view.address, name)


def interpolate(template: str, ctx: LogContext) -> str:
    """``template`` with Kuma's placeholders replaced by ``ctx``'s values (Envoy's operators kept)."""
    values = (
        ("%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%", ctx.source_ip),
        ("%KUMA_SOURCE_ADDRESS%", f"{ctx.source_ip}:0"),
        ("%KUMA_SOURCE_SERVICE%", ctx.source_service),
        ("%KUMA_DESTINATION_SERVICE%", ctx.destination_service),
        ("%KUMA_MESH%", ctx.mesh),
        ("%KUMA_TRAFFIC_DIRECTION%", ctx.direction),
    )
    for placeholder, value in values:
        template = template.replace(placeholder, value)
    return template


def _struct(pairs: dict[str, struct_pb2.Value | str]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    for key, value in pairs.items():
        if isinstance(value, str):
            out.fields[key].string_value = value
        else:
            out.fields[key].CopyFrom(value)
    return out


def _format(fmt: LogFormat, backend: LogBackend, ctx: LogContext, default: str) -> dict[str, object]:
    """The ``SubstitutionFormatString`` fields of ``backend`` (as keyword arguments)."""
    if fmt.json:
        body: struct_pb2.Value | str = struct_pb2.Value(
            struct_value=_struct({k: interpolate(v, ctx) for k, v in fmt.json})
        )
    else:
        body = interpolate((fmt.plain if fmt.plain else default) + "\n", ctx)
    opts: dict[str, object] = {"omit_empty_values": fmt.omit_empty_values}
    if backend.type == "Tcp":
        return {**opts, "json_format": _struct({"address": backend.target, "message": body})}
    if isinstance(body, str):
        return {**opts, "text_format_source": base_pb2.DataSource(inline_string=body)}
    return {**opts, "json_format": body.struct_value}


def _access_log(backend: LogBackend, ctx: LogContext, default: str) -> accesslog_pb2.AccessLog:
    path = backend.target if backend.type == "File" else access_log_pipe(ctx.mesh, ctx.proxy)
    fmt = substitution_format_string_pb2.SubstitutionFormatString(**_format(backend.format, backend, ctx, default))
    config = file_pb2.FileAccessLog(path=path, log_format=fmt)
    return accesslog_pb2.AccessLog(name=FILE_ACCESS_LOG, typed_config=pack(config))


def apply_access_log(listener: listener_pb2.Listener, settings: AccessLogSettings, ctx: LogContext) -> None:
    """Append an access log per backend of ``settings`` to ``listener``'s HCMs and tcp_proxies."""
    if not settings.backends:
        return
    http = [_access_log(b, ctx, DEFAULT_HTTP_FORMAT) for b in settings.backends]
    tcp = [_access_log(b, ctx, DEFAULT_TCP_FORMAT) for b in settings.backends]
    edit_filters(listener, lambda m: m.access_log.extend(http), lambda t: t.access_log.extend(tcp))
