"""MeshRateLimit settings: the local HTTP request rate and TCP connection rate of an inbound.

Read from the merged ``default`` (``from[]`` items with a Mesh source and ``rules[]`` items, least
to most specific, RFC 7396: a more specific policy may change only ``onRateLimit`` or only
``disabled`` and keep the rest). ``local.http``: ``requestRate{num, interval}``, ``disabled``,
``onRateLimit{status, headers{add, set}}``; ``local.tcp``: ``connectionRate{num, interval}``,
``disabled``. A limit is in force (``active``) when it has a rate and is not disabled, as in Kuma:
``disabled: true`` in any later policy turns an earlier limit off, ``disabled: false`` on again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from atoll.topology.settings.conf import block, blocks, flag, integer, seconds, text

__all__ = ["HttpRateLimit", "Rate", "RateLimitSettings", "TcpRateLimit"]


@dataclass(frozen=True, slots=True)
class Rate:
    """``num`` requests (or connections) per ``interval`` seconds."""

    num: int
    interval: float

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any] | None) -> Rate | None:
        if conf is None:
            return None
        num, interval = integer(conf, "num"), seconds(conf, "interval")
        return None if num is None or interval is None else cls(num, interval)


@dataclass(frozen=True, slots=True)
class HttpRateLimit:
    rate: Rate | None = None
    disabled: bool = False
    status: int | None = None
    """The status of a limited request (Envoy's default, 429, when unset)."""
    add_headers: tuple[tuple[str, str], ...] = ()
    """Headers appended to a limited response (``onRateLimit.headers.add``)."""
    set_headers: tuple[tuple[str, str], ...] = ()
    """Headers that replace any of that name (``onRateLimit.headers.set``). As in Kuma, a value is
    split on commas, one entry per part (``"a,b"`` -> ``a`` and ``b``, kept as written)."""

    @property
    def active(self) -> bool:
        return self.rate is not None and not self.disabled


@dataclass(frozen=True, slots=True)
class TcpRateLimit:
    rate: Rate | None = None
    disabled: bool = False

    @property
    def active(self) -> bool:
        return self.rate is not None and not self.disabled


def _headers(conf: Mapping[str, Any] | None, key: str) -> tuple[tuple[str, str], ...]:
    return tuple((text(h, "name") or "", text(h, "value") or "") for h in blocks(conf or {}, key))


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    http: HttpRateLimit | None = None
    tcp: TcpRateLimit | None = None

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> RateLimitSettings:
        local = block(conf, "local") or {}
        http, tcp = block(local, "http"), block(local, "tcp")
        return cls(http=None if http is None else _http(http), tcp=None if tcp is None else _tcp(tcp))


def _http(conf: Mapping[str, Any]) -> HttpRateLimit:
    on_limit = block(conf, "onRateLimit") or {}
    headers = block(on_limit, "headers")
    return HttpRateLimit(
        rate=Rate.from_conf(block(conf, "requestRate")),
        disabled=bool(flag(conf, "disabled")),
        status=integer(on_limit, "status"),
        add_headers=_headers(headers, "add"),
        set_headers=tuple((name, part) for name, value in _headers(headers, "set") for part in value.split(",")),
    )


def _tcp(conf: Mapping[str, Any]) -> TcpRateLimit:
    return TcpRateLimit(rate=Rate.from_conf(block(conf, "connectionRate")), disabled=bool(flag(conf, "disabled")))
