"""Pieces every store backend shares: event fan-out, row <-> resource conversion, argument checks,
and the write planning the SQL backends have in common.

``Broadcaster`` keeps the queues of open ``Subscription``s; ``publish`` puts events on each queue in
the same loop step, so every watcher sees them in the order they were published. Backends call it
only from the event loop thread. Rows carry the mesh as ``""`` for global-scoped resources (so the
key ``(type, mesh, name)`` can be a primary key); ``resource_from_row`` maps it back to ``None``.

The SQL backends (sqlite, postgres) read the stored row, then ask ``plan_put`` / ``plan_delete``
what to write and which events it makes (version and conflict checks, times, Mesh cascade order),
and number the events at commit with ``number_events``; they keep only their SQL and driver calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from atoll.errors import Conflict, FieldError, InvalidInput, NotFound, StoreError
from atoll.resources.codec import decode_spec
from atoll.resources.meta import Resource, ResourceMeta
from atoll.resources.types import get_type
from atoll.store.protocol import ChangeEvent, EventKind, Page, Subscription

COLUMNS = "type, mesh, name, version, labels, spec, creation_time, modification_time"
"""The columns of a stored resource, in the order of ``resource_from_row``'s arguments."""

Pending = tuple[EventKind, Resource[Any]]
Pendings = list[Pending]
"""(kind, resource) per event of a write, numbered at commit by ``number_events``."""


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


def page(items: list[Resource[Any]], offset: int, total: int) -> Page:
    """The page of ``items`` that starts at ``offset`` of ``total`` matches."""
    return Page(items=items, total=total, next_offset=next_offset(offset, len(items), total))


def first_version(resource: Resource[Any]) -> Resource[Any]:
    """``resource`` as newly created: version 1, both times now."""
    now = datetime.now(UTC)
    return resource.with_meta(version=1, creation_time=now, modification_time=now)


def plan_put(resource: Resource[Any], stored: tuple[int, datetime] | None, *, upsert: bool) -> Pending:
    """What writing ``resource`` over the stored (version, creation time), or over nothing, makes.

    ``upsert=False`` is ``Store.update``: the resource must be stored and ``meta.version`` must be
    the stored one. ``upsert=True`` is ``Put``: version 0 means "whatever is stored (or nothing)".
    Raises ``NotFound`` / ``Conflict``; otherwise returns the event kind and the resource to store.
    """
    if stored is None:
        if not upsert or resource.meta.version:
            raise not_found(resource.type, resource.name, resource.mesh)
        return EventKind.CREATED, first_version(resource)
    version, ctime = stored
    if (not upsert or resource.meta.version) and resource.meta.version != version:
        raise stale(resource.key, resource.meta.version, version)
    return EventKind.UPDATED, resource.with_meta(
        version=version + 1, creation_time=ctime, modification_time=datetime.now(UTC)
    )


def check_version(current: Resource[Any], version: int | None) -> None:
    """``Conflict`` unless ``version`` is unset (``None``/0) or the stored one."""
    if version and version != current.meta.version:
        raise stale(current.key, version, current.meta.version)


def plan_delete(gone: Resource[Any], children: Iterable[Resource[Any]]) -> Pendings:
    """The events of deleting ``gone`` (and, for a Mesh, the resources in it): children by (type, name)."""
    events: Pendings = [(EventKind.DELETED, r) for r in sorted(children, key=lambda r: (r.type, r.name))]
    events.append((EventKind.DELETED, gone))
    return events


def number_events(pending: Pendings, revision: int) -> list[ChangeEvent]:
    """The events of a write committed after ``revision``: consecutive revisions from ``revision + 1``."""
    return [ChangeEvent(kind, r, revision + i) for i, (kind, r) in enumerate(pending, start=1)]


def not_found(type: str, name: str, mesh: str | None) -> NotFound:
    where = f" in mesh {mesh}" if mesh else ""
    return NotFound(f"{type} {name}{where} not found")


def stale(what: object, given: int, stored: int) -> Conflict:
    return Conflict(f"{what}: version {given} is stale, stored version is {stored}")


CLOSED = "store is closed"
