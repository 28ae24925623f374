"""Pieces every store backend shares: event fan-out, row <-> resource conversion, argument checks.

``Broadcaster`` keeps the queues of open ``Subscription``s; ``publish`` puts events on each queue in
the same loop step, so every watcher sees them in the order they were published. Backends call it
only from the event loop thread. Rows carry the mesh as ``""`` for global-scoped resources (so the
key ``(type, mesh, name)`` can be a primary key); ``resource_from_row`` maps it back to ``None``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from atoll.errors import Conflict, FieldError, InvalidInput, NotFound, StoreError
from atoll.resources.codec import decode_spec
from atoll.resources.meta import Resource, ResourceMeta
from atoll.resources.types import get_type
from atoll.store.protocol import ChangeEvent, Subscription


class Broadcaster:
    """The watchers of one store. Not thread-safe: use from the event loop only."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[ChangeEvent | None]] = set()
        self._closed = False

    def subscribe(self) -> Subscription:
        if self._closed:
            raise StoreError("store is closed")
        q: asyncio.Queue[ChangeEvent | None] = asyncio.Queue()
        self._queues.add(q)
        return Subscription(q, lambda: self._queues.discard(q))

    def publish(self, events: Iterable[ChangeEvent]) -> None:
        for ev in events:
            for q in self._queues:
                q.put_nowait(ev)

    def close(self) -> None:
        """End every subscription (their iterators stop after the events already queued)."""
        self._closed = True
        for q in self._queues:
            q.put_nowait(None)
        self._queues.clear()

    @property
    def watchers(self) -> int:
        return len(self._queues)


def mesh_column(mesh: str | None) -> str:
    return mesh or ""


def resource_from_row(
    type: str,
    mesh: str,
    name: str,
    version: int,
    labels: Mapping[str, str],
    spec: Mapping[str, Any],
    creation_time: datetime,
    modification_time: datetime,
) -> Resource[Any]:
    """Rebuild a stored resource; the spec is validated by its type's model again."""
    rt = get_type(type)
    meta = ResourceMeta(
        name=name,
        mesh=mesh or None,
        labels=dict(labels),
        version=int(version),
        creation_time=creation_time,
        modification_time=modification_time,
    )
    return Resource(type=rt.name, meta=meta, spec=decode_spec(rt, spec))


def check_paging(offset: int, limit: int | None) -> None:
    errors = []
    if offset < 0:
        errors.append(FieldError("offset", f"must be 0 or more, got {offset}"))
    if limit is not None and limit < 0:
        errors.append(FieldError("limit", f"must be 0 or more, got {limit}"))
    if errors:
        raise InvalidInput(errors, title="invalid paging")


def next_offset(offset: int, count: int, total: int) -> int | None:
    """Where the next page starts, or ``None`` when this page reaches the end."""
    end = offset + count
    return end if end < total else None


def not_found(type: str, name: str, mesh: str | None) -> NotFound:
    where = f" in mesh {mesh}" if mesh else ""
    return NotFound(f"{type} {name}{where} not found")


def stale(what: object, given: int, stored: int) -> Conflict:
    return Conflict(f"{what}: version {given} is stale, stored version is {stored}")


CLOSED = "store is closed"
