"""Immutable, hashable tag sets and the protocol vocabulary of the mesh.

``Tags`` is a read-only mapping (sorted by key) that can be hashed and compared, so views made of
tags stay plain values: two ``ProxyView`` values built from the same inputs are equal, which lets
the control plane skip regeneration when nothing a proxy sees has changed.

``protocol_of`` normalises the ``kuma.io/protocol`` tag: unknown or missing means ``tcp``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Literal, cast

from atoll.resources.models.dataplane import PROTOCOL_TAG, SERVICE_TAG, ZONE_TAG

__all__ = [
    "HTTP_PROTOCOLS",
    "PROTOCOL_TAG",
    "SERVICE_TAG",
    "ZONE_TAG",
    "Protocol",
    "Tags",
    "common_protocol",
    "protocol_of",
]

Protocol = Literal["tcp", "http", "http2", "grpc", "kafka"]
_PROTOCOLS: frozenset[str] = frozenset(("tcp", "http", "http2", "grpc", "kafka"))
HTTP_PROTOCOLS: frozenset[str] = frozenset(("http", "http2", "grpc"))
"""Protocols served through Envoy's HTTP connection manager; the others go through tcp_proxy."""


def protocol_of(tags: Mapping[str, str]) -> Protocol:
    """The protocol named by ``kuma.io/protocol`` in ``tags``; ``tcp`` when missing or unknown."""
    value = tags.get(PROTOCOL_TAG, "tcp")
    return cast(Protocol, value) if value in _PROTOCOLS else "tcp"


def common_protocol(protocols: Iterable[Protocol]) -> Protocol:
    """The protocol all of ``protocols`` agree on; ``tcp`` when they disagree or there are none."""
    distinct = set(protocols)
    if len(distinct) == 1:
        return distinct.pop()
    return "tcp"


class Tags(Mapping[str, str]):
    """A frozen ``str -> str`` mapping, iterated in key order, hashable."""

    __slots__ = ("_data", "_hash", "_items")

    def __init__(self, data: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        items = tuple(sorted(dict(data).items()))
        self._items: tuple[tuple[str, str], ...] = items
        self._data: dict[str, str] = dict(items)
        self._hash = hash(items)

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Tags):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"Tags({self._data!r})"

    def without(self, *keys: str) -> Tags:
        """A copy without ``keys``."""
        return Tags((k, v) for k, v in self._items if k not in keys)
