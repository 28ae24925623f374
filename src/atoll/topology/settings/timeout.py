"""MeshTimeout settings: connection, idle and HTTP timeouts, in seconds (``None``: not set).

Read from the merged ``default`` (``connectionTimeout``, ``idleTimeout``, ``http.requestTimeout``,
``http.streamIdleTimeout``, ``http.maxStreamDuration``, ``http.maxConnectionDuration``,
``http.requestHeadersTimeout``); ``0`` is a real value (Envoy reads it as "disabled").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from atoll.topology.settings.conf import block, read_fields, seconds

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
        return read_fields(cls, conf, seconds, http=read_fields(HttpTimeouts, block(conf, "http") or {}, seconds))
