"""MeshHealthCheck settings: one active health check of the outbound's service.

Defaults as Kuma's: interval 60 s, timeout 15 s, 5 failures to eject, 1 success to return. Which
of ``http``, ``grpc`` and ``tcp`` applies depends on the service's protocol (the generator picks);
each can be ``disabled``. TCP payloads stay as written (base64 text); the generator hex-encodes
them. ``healthy_panic_threshold``/``fail_traffic_on_panic`` configure the cluster's balancer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from atoll.topology.settings.conf import block, blocks, flag, integer, number, seconds, text, texts

__all__ = ["GrpcCheck", "HealthCheckSettings", "HttpCheck", "TcpCheck"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HttpCheck:
    disabled: bool = False
    path: str = "/"
    expected_statuses: tuple[int, ...] = ()
    headers_to_set: tuple[tuple[str, str], ...] = ()
    """(name, value) headers that replace what the request has."""
    headers_to_add: tuple[tuple[str, str], ...] = ()
    """(name, value) headers appended to what the request has."""


@dataclass(frozen=True, slots=True)
class GrpcCheck:
    disabled: bool = False
    service_name: str = ""
    authority: str = ""


@dataclass(frozen=True, slots=True)
class TcpCheck:
    disabled: bool = False
    send: str | None = None
    """Base64 of the bytes to send (None: send nothing)."""
    receive: tuple[str, ...] = ()
    """Base64 of the byte blocks to expect, in order."""


@dataclass(frozen=True, slots=True)
class HealthCheckSettings:
    interval: float = 60.0
    timeout: float = 15.0
    unhealthy_threshold: int = 5
    healthy_threshold: int = 1
    initial_jitter: float | None = None
    interval_jitter: float | None = None
    interval_jitter_percent: int | None = None
    no_traffic_interval: float | None = None
    reuse_connection: bool | None = None
    always_log_health_check_failures: bool = False
    healthy_panic_threshold: float | None = None
    fail_traffic_on_panic: bool | None = None
    http: HttpCheck = HttpCheck()
    grpc: GrpcCheck = GrpcCheck()
    tcp: TcpCheck = TcpCheck()

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> HealthCheckSettings:
        http, grpc, tcp = (block(conf, k) or {} for k in ("http", "grpc", "tcp"))
        headers = block(http, "requestHeadersToAdd") or {}
        default = cls()
        return cls(
            interval=_or(seconds(conf, "interval"), default.interval),
            timeout=_or(seconds(conf, "timeout"), default.timeout),
            unhealthy_threshold=_or(integer(conf, "unhealthyThreshold"), default.unhealthy_threshold),
            healthy_threshold=_or(integer(conf, "healthyThreshold"), default.healthy_threshold),
            initial_jitter=seconds(conf, "initialJitter"),
            interval_jitter=seconds(conf, "intervalJitter"),
            interval_jitter_percent=integer(conf, "intervalJitterPercent"),
            no_traffic_interval=seconds(conf, "noTrafficInterval"),
            reuse_connection=flag(conf, "reuseConnection"),
            always_log_health_check_failures=bool(conf.get("alwaysLogHealthCheckFailures")),
            healthy_panic_threshold=number(conf, "healthyPanicThreshold"),
            fail_traffic_on_panic=flag(conf, "failTrafficOnPanic"),
            http=HttpCheck(
                disabled=bool(http.get("disabled")),
                path=text(http, "path") or "/",
                expected_statuses=tuple(int(s) for s in http.get("expectedStatuses") or ()),
                headers_to_set=_headers(headers, "set"),
                headers_to_add=_headers(headers, "add"),
            ),
            grpc=GrpcCheck(
                disabled=bool(grpc.get("disabled")),
                service_name=text(grpc, "serviceName") or "",
                authority=text(grpc, "authority") or "",
            ),
            tcp=TcpCheck(
                disabled=bool(tcp.get("disabled")), send=text(tcp, "send") or None, receive=texts(tcp, "receive")
            ),
        )


def _or(value: T | None, default: T) -> T:
    return default if value is None else value


def _headers(conf: Mapping[str, Any], key: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(h["name"]), str(h["value"])) for h in blocks(conf, key))
