"""MeshTimeout settings: connection, idle and HTTP timeouts, in seconds (``None``: not set).

Read from the merged ``default`` (``connectionTimeout``, ``idleTimeout``, ``http.requestTimeout``,
``http.streamIdleTimeout``, ``http.maxStreamDuration``, ``http.maxConnectionDuration``,
``http.requestHeadersTimeout``); ``0`` is a real value (Envoy reads it as "disabled").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from atoll.topology.settings.conf import block, seconds

__all__ = ["HttpTimeouts", "TimeoutSettings"]


@dataclass(frozen=True, slots=True)
class HttpTimeouts:
    request_timeout: float | None = None
    stream_idle_timeout: float | None = None
    max_stream_duration: float | None = None
    max_connection_duration: float | None = None
    request_headers_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class TimeoutSettings:
    connection_timeout: float | None = None
    idle_timeout: float | None = None
    http: HttpTimeouts = HttpTimeouts()

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> TimeoutSettings:
        http = block(conf, "http") or {}
        return cls(
            connection_timeout=seconds(conf, "connectionTimeout"),
            idle_timeout=seconds(conf, "idleTimeout"),
            http=HttpTimeouts(
                request_timeout=seconds(http, "requestTimeout"),
                stream_idle_timeout=seconds(http, "streamIdleTimeout"),
                max_stream_duration=seconds(http, "maxStreamDuration"),
                max_connection_duration=seconds(http, "maxConnectionDuration"),
                request_headers_timeout=seconds(http, "requestHeadersTimeout"),
            ),
        )
