"""What one ADS stream sent and heard back, per type: the mutable bookkeeping and its frozen views.

``TypeState`` is the per-type record the stream machines (``protocol.py``) update on every send, ACK and
NACK: subscriptions, the latest nonce and version sent, counters and times (from the machine's injected
clock). ``freeze()`` turns it into a ``TypeStatus`` — immutable, cached until the next change — and a
``StreamStatus`` gathers them for the inventory. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Mode = Literal["sotw", "delta"]


@dataclass(frozen=True, slots=True)
class TypeStatus:
    """What one stream sent and heard back for one type. Times are the injected clock's (epoch seconds)."""

    type_url: str
    wildcard: bool
    subscriptions: int
    sent_count: int = 0
    last_sent_version: str | None = None
    last_sent_nonce: str | None = None
    last_sent_at: float | None = None
    ack_count: int = 0
    last_acked_version: str | None = None
    last_acked_at: float | None = None
    nack_count: int = 0
    last_nack_error: str | None = None
    last_nack_version: str | None = None
    last_nack_at: float | None = None
    stale_dropped: int = 0
    #: The latest response sent has not been answered yet.
    pending: bool = False
    #: The peer NACKed the latest response sent.
    rejected: bool = False

    @property
    def in_sync(self) -> bool:
        """The peer ACKed the latest response sent (or nothing was sent yet)."""
        return not self.pending and not self.rejected


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """Frozen view of one stream for the inventory: per type, what was sent, ACKed and NACKed."""

    stream_id: int
    node_id: str
    mode: Mode
    opened_at: float
    types: Mapping[str, TypeStatus]

    @property
    def nacked(self) -> bool:
        return any(t.rejected for t in self.types.values())

    @property
    def in_sync(self) -> bool:
        return all(t.in_sync for t in self.types.values())


class TypeState:
    """Mutable per-type bookkeeping shared by both machines."""

    __slots__ = (
        "ack_count",
        "acked_at",
        "acked_version",
        "answered",
        "client",
        "diffed",
        "frozen",
        "key",
        "nack_at",
        "nack_count",
        "nack_error",
        "nack_version",
        "names",
        "names_list",
        "nonce",
        "rejected",
        "sent_at",
        "sent_count",
        "stale",
        "sub_gen",
        "type_url",
        "version",
        "wildcard",
    )

    def __init__(self, type_url: str) -> None:
        self.type_url = type_url
        self.wildcard = False
        self.names: set[str] = set()
        self.names_list: list[str] | None = None  # SotW: the last resource_names, to skip unchanged lists
        self.sub_gen = 0
        self.client: dict[str, str] = {}  # delta: name -> version the peer has
        self.key: object = None  # SotW: what the latest response selected
        #: The (type version, subscription generation) last compared: equal means nothing to do.
        self.diffed: tuple[str, int] | None = None
        self.nonce: str | None = None
        self.version: str | None = None
        self.sent_at: float | None = None
        self.sent_count = 0
        self.answered = True
        self.rejected = False
        self.ack_count = 0
        self.acked_version: str | None = None
        self.acked_at: float | None = None
        self.nack_count = 0
        self.nack_error: str | None = None
        self.nack_version: str | None = None
        self.nack_at: float | None = None
        self.stale = 0
        self.frozen: TypeStatus | None = None  # the last ``freeze()``, until something changes

    def freeze(self) -> TypeStatus:
        if self.frozen is None:
            self.frozen = self._freeze()
        return self.frozen

    def _freeze(self) -> TypeStatus:
        return TypeStatus(
            type_url=self.type_url,
            wildcard=self.wildcard,
            subscriptions=len(self.names),
            sent_count=self.sent_count,
            last_sent_version=self.version,
            last_sent_nonce=self.nonce,
            last_sent_at=self.sent_at,
            ack_count=self.ack_count,
            last_acked_version=self.acked_version,
            last_acked_at=self.acked_at,
            nack_count=self.nack_count,
            last_nack_error=self.nack_error,
            last_nack_version=self.nack_version,
            last_nack_at=self.nack_at,
            stale_dropped=self.stale,
            pending=not self.answered,
            rejected=self.rejected,
        )


__all__ = ["Mode", "StreamStatus", "TypeState", "TypeStatus"]
