"""MeshAccessLog settings: the backends a listener logs to, each with its format.

Read from the merged ``default`` (``backends``): as every array in a merge patch, the backends of
the most specific policy replace the others' (Kuma's merge marks no MeshAccessLog list as
appended). Each backend keeps its ``type`` (``File``: ``target`` is the path; ``Tcp``: ``target``
is ``host:port``) and its ``LogFormat``: ``plain`` text, ``json`` (key, value) pairs, or neither
(Kuma's default format for the listener's protocol, chosen by the generator).

``OpenTelemetry`` backends are not enforced (Atoll has no OTLP collector cluster yet): they are
left out of ``backends`` here and counted in ``skipped``, so a listener whose only backend is
OpenTelemetry gets no access log rather than a half-built one. ``unenforced_backends(spec)`` names
those backends in a policy's JSON spec, for the "stored, not enforced" warning of a write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from atoll.topology.settings.conf import block, blocks, flag, text

__all__ = ["ENFORCED_BACKENDS", "AccessLogSettings", "LogBackend", "LogFormat", "unenforced_backends"]

BackendType = Literal["File", "Tcp"]
ENFORCED_BACKENDS: tuple[BackendType, ...] = ("File", "Tcp")
"""The backend types Atoll turns into Envoy access logs (``OpenTelemetry`` is stored, not enforced)."""


@dataclass(frozen=True, slots=True)
class LogFormat:
    """``plain`` text or ``json`` (key, value) pairs; neither set: the default format."""

    plain: str | None = None
    json: tuple[tuple[str, str], ...] = ()
    omit_empty_values: bool = False

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any] | None) -> LogFormat:
        if conf is None:
            return cls()
        pairs = tuple((str(kv.get("key")), str(kv.get("value", ""))) for kv in blocks(conf, "json"))
        plain = text(conf, "plain") if conf.get("type") != "Json" else None
        return cls(plain=plain, json=pairs, omit_empty_values=bool(flag(conf, "omitEmptyValues")))


@dataclass(frozen=True, slots=True)
class LogBackend:
    """One File (``target``: path) or Tcp (``target``: ``host:port``) backend."""

    type: BackendType
    target: str
    format: LogFormat = LogFormat()


@dataclass(frozen=True, slots=True)
class AccessLogSettings:
    backends: tuple[LogBackend, ...] = ()
    skipped: int = 0
    """Backends of a type Atoll does not enforce (OpenTelemetry), left out of ``backends``."""

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> AccessLogSettings:
        out: list[LogBackend] = []
        skipped = 0
        for backend in blocks(conf, "backends"):
            kind = backend.get("type")
            if kind == "File":
                body, key = block(backend, "file") or {}, "path"
            elif kind == "Tcp":
                body, key = block(backend, "tcp") or {}, "address"
            else:
                skipped += 1
                continue
            out.append(LogBackend(kind, str(body.get(key, "")), LogFormat.from_conf(block(body, "format"))))
        return cls(backends=tuple(out), skipped=skipped)


def unenforced_backends(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """Where a MeshAccessLog spec (camelCase JSON) has backends Atoll does not enforce, e.g.
    ``to[0].default.backends[1]: OpenTelemetry``."""
    out: list[str] = []
    for section in ("to", "from", "rules"):
        for i, item in enumerate(blocks(spec, section)):
            for j, backend in enumerate(blocks(block(item, "default") or {}, "backends")):
                kind = backend.get("type")
                if kind not in ENFORCED_BACKENDS:
                    out.append(f"{section}[{i}].default.backends[{j}]: {kind}")
    return tuple(out)
