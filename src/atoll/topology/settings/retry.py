"""MeshRetry settings: the retry policy of HTTP and gRPC routes, and TCP connect attempts.

``http``/``grpc`` are None when the policy leaves that block out (or empty). ``retry_on`` keeps the
policy's condition names (``5xx``, ``GatewayError``, a status code such as ``"503"``,
``HttpMethodGet``; gRPC: ``Canceled``, ...); an empty tuple means the generator's defaults.
``back_off`` is None unless the policy sets it (its ``base_interval`` then defaults to 25 ms);
``rate_limited_back_off`` is None unless it lists reset headers. Durations are seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from atoll.topology.settings.conf import block, blocks, integer, seconds, text, texts

__all__ = ["BackOff", "HeaderMatch", "RateLimitedBackOff", "ResetHeader", "RetryBlock", "RetrySettings"]

MatchType = Literal["Exact", "Prefix", "RegularExpression", "Present", "Absent"]
ResetFormat = Literal["Seconds", "UnixTimestamp"]
DEFAULT_BASE_INTERVAL = 0.025
"""Seconds between retries when ``backOff`` sets only ``maxInterval`` (Envoy's own default too)."""


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    name: str
    type: MatchType = "Exact"
    value: str = ""


@dataclass(frozen=True, slots=True)
class BackOff:
    base_interval: float = DEFAULT_BASE_INTERVAL
    max_interval: float | None = None


@dataclass(frozen=True, slots=True)
class ResetHeader:
    name: str
    format: ResetFormat


@dataclass(frozen=True, slots=True)
class RateLimitedBackOff:
    reset_headers: tuple[ResetHeader, ...]
    max_interval: float | None = None


@dataclass(frozen=True, slots=True)
class RetryBlock:
    """The ``http`` or ``grpc`` block (the header matches and host selection are HTTP's only)."""

    retry_on: tuple[str, ...] = ()
    num_retries: int | None = None
    per_try_timeout: float | None = None
    back_off: BackOff | None = None
    rate_limited_back_off: RateLimitedBackOff | None = None
    retriable_response_headers: tuple[HeaderMatch, ...] = ()
    retriable_request_headers: tuple[HeaderMatch, ...] = ()
    host_selection: tuple[str, ...] = ()
    """Host predicates by name (``OmitPreviousHosts``, ...), in policy order."""
    host_selection_max_attempts: int | None = None

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any] | None) -> RetryBlock | None:
        if not conf:
            return None
        back_off = block(conf, "backOff")
        base = seconds(back_off or {}, "baseInterval")
        limited = block(conf, "rateLimitedBackOff") or {}
        resets = blocks(limited, "resetHeaders")
        return cls(
            retry_on=texts(conf, "retryOn"),
            num_retries=integer(conf, "numRetries"),
            per_try_timeout=seconds(conf, "perTryTimeout"),
            back_off=BackOff(
                base_interval=DEFAULT_BASE_INTERVAL if base is None else base,
                max_interval=seconds(back_off, "maxInterval"),
            )
            if back_off
            else None,
            rate_limited_back_off=RateLimitedBackOff(
                reset_headers=tuple(
                    ResetHeader(name=str(h["name"]), format=cast(ResetFormat, h["format"])) for h in resets
                ),
                max_interval=seconds(limited, "maxInterval"),
            )
            if resets
            else None,
            retriable_response_headers=_matches(conf, "retriableResponseHeaders"),
            retriable_request_headers=_matches(conf, "retriableRequestHeaders"),
            host_selection=tuple(text(p, "predicate") or "" for p in blocks(conf, "hostSelection")),
            host_selection_max_attempts=integer(conf, "hostSelectionMaxAttempts"),
        )


@dataclass(frozen=True, slots=True)
class RetrySettings:
    tcp_max_connect_attempt: int | None = None
    http: RetryBlock | None = None
    grpc: RetryBlock | None = None

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> RetrySettings:
        return cls(
            tcp_max_connect_attempt=integer(block(conf, "tcp") or {}, "maxConnectAttempt"),
            http=RetryBlock.from_conf(block(conf, "http")),
            grpc=RetryBlock.from_conf(block(conf, "grpc")),
        )


def _matches(conf: Mapping[str, Any], key: str) -> tuple[HeaderMatch, ...]:
    return tuple(
        HeaderMatch(name=str(m["name"]), type=cast(MatchType, m.get("type", "Exact")), value=str(m.get("value", "")))
        for m in blocks(conf, key)
    )
