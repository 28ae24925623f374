"""What every proxy of this zone CP is doing: connection times, Envoy version, xDS sent/ACK/NACK.

Fed by the ADS servicer's hooks (stream open/close, status after every send or ACK/NACK); read by the
REST API (``dataplanes+insights``) and the CLI's ``atoll inspect``. ``config_errors`` (set by the
lifecycle to the reconciler's) tells why a proxy gets no configuration, ``certificates`` (the
identity book's) its workload certificate; both are asked when an insight is read, never on the hot
path. ``revision`` counts changes, so a reader (the GUI) can poll it instead of reading every
insight. Kept in memory: it describes live streams of this CP instance, and a restarted CP rebuilds
it as proxies reconnect.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from atoll.xds import vocabulary as xds
from atoll.xds.server import StreamStatus

_SHORT_TYPES = {
    xds.LISTENER: "lds",
    xds.ROUTE: "rds",
    xds.CLUSTER: "cds",
    xds.ENDPOINT: "eds",
    xds.SECRET: "sds",
}


@dataclass(frozen=True, slots=True)
class ProxyInsight:
    node_id: str
    connected: bool
    connected_since: float | None
    disconnected_at: float | None
    cp_instance: str
    envoy_version: str
    kind: str
    streams: int
    status: StreamStatus | None = None
    nack_count: int = 0
    last_nack_error: str | None = None
    config_error: str | None = None
    """Why the control plane cannot build this proxy's configuration now, if it cannot."""
    mtls: dict[str, Any] | None = None
    """Its workload certificate: serial, expiry, last issued, how many issued (``IdentityBook.certificate``)."""

    def to_json(self) -> dict[str, Any]:
        types: dict[str, Any] = {}
        if self.status is not None:
            for url, t in sorted(self.status.types.items()):
                types[_SHORT_TYPES.get(url, url)] = {
                    "lastSentVersion": t.last_sent_version,
                    "lastSentAt": _iso(t.last_sent_at),
                    "lastAckedVersion": t.last_acked_version,
                    "lastAckedAt": _iso(t.last_acked_at),
                    "acks": t.ack_count,
                    "nacks": t.nack_count,
                    "lastNackError": t.last_nack_error,
                    "inSync": t.in_sync,
                }
        return {
            "online": self.connected,
            "connectedSince": _iso(self.connected_since),
            "disconnectedAt": _iso(self.disconnected_at),
            "controlPlaneInstance": self.cp_instance,
            "envoyVersion": self.envoy_version,
            "proxyType": self.kind,
            "xdsMode": self.status.mode if self.status is not None else None,
            "nackCount": self.nack_count,
            "lastNackError": self.last_nack_error,
            "configError": self.config_error,
            "mTLS": self.mtls,
            "xds": types,
        }


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


@dataclass
class _Entry:
    insight: ProxyInsight
    streams: int = 0
    pending: StreamStatus | None = None
    """The newest stream status, not yet folded into ``insight`` (folding waits for a reader: the
    status changes twice per proxy per config change, and most of those nobody looks at)."""

    def folded(self) -> ProxyInsight:
        status = self.pending
        if status is not None:
            self.pending = None
            nacks = sum(t.nack_count for t in status.types.values())
            errors = [(t.last_nack_at or 0.0, t.last_nack_error) for t in status.types.values() if t.last_nack_error]
            last_error = max(errors)[1] if errors else self.insight.last_nack_error
            self.insight = replace(self.insight, status=status, nack_count=nacks, last_nack_error=last_error)
        return self.insight


class Inventory:
    def __init__(self, *, cp_instance: str, clock: Callable[[], float] = time.time) -> None:
        self._cp = cp_instance
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self.revision = 0
        """Bumped on every change (stream opened, closed, status, forgotten): the GUI polls it."""
        self.config_errors: Callable[[str], str | None] = lambda node_id: None
        self.certificates: Callable[[str], dict[str, Any] | None] = lambda node_id: None

    def opened(self, node_id: str, *, envoy_version: str, kind: str) -> None:
        self.revision += 1
        e = self._entries.get(node_id)
        now = self._clock()
        if e is not None:
            e.folded()
        if e is None or not e.insight.connected:
            base = ProxyInsight(node_id, True, now, None, self._cp, envoy_version, kind, 0)
            e = _Entry(base if e is None else replace(base, nack_count=e.insight.nack_count))
            self._entries[node_id] = e
        e.streams += 1
        e.insight = replace(e.insight, streams=e.streams, envoy_version=envoy_version or e.insight.envoy_version)

    def closed(self, node_id: str) -> None:
        self.revision += 1
        e = self._entries.get(node_id)
        if e is None or e.streams == 0:
            return
        e.folded()
        e.streams -= 1
        if e.streams == 0:
            e.insight = replace(e.insight, connected=False, disconnected_at=self._clock(), streams=0)
        else:
            e.insight = replace(e.insight, streams=e.streams)

    def status(self, node_id: str, status: StreamStatus) -> None:
        self.revision += 1
        e = self._entries.get(node_id)
        if e is not None:
            e.pending = status

    def forget(self, node_id: str) -> None:
        self.revision += 1
        self._entries.pop(node_id, None)

    def get(self, node_id: str) -> ProxyInsight | None:
        e = self._entries.get(node_id)
        return self._with_error(e.folded()) if e is not None else None

    def connected(self, node_id: str) -> bool:
        e = self._entries.get(node_id)
        return e is not None and e.insight.connected

    def all(self) -> list[ProxyInsight]:
        return [self._with_error(e.folded()) for _, e in sorted(self._entries.items())]

    def _with_error(self, insight: ProxyInsight) -> ProxyInsight:
        error = self.config_errors(insight.node_id)
        mtls = self.certificates(insight.node_id)
        if error == insight.config_error and mtls == insight.mtls:
            return insight
        return replace(insight, config_error=error, mtls=mtls)
