"""Pieces every store backend shares: the write methods, event fan-out, write planning, checks.

``BaseStore`` is the Store protocol's ``create`` / ``update`` / ``delete`` / ``apply`` / ``watch`` /
``close`` for every backend: each write is a list of steps (``Create``, ``Update``, ``Put``,
``Delete``) handed to the backend's one ``_write``, which runs them all or none, numbers their events
after the store's revision (``number_events``) and publishes them. So the three backends cannot
differ in what a write means; they differ in how they read what is stored and run a transaction.

For each step the backend reads what is stored and asks ``plan_put`` / ``plan_delete`` what to write
and which events it makes (existence, version and conflict checks, times, Mesh cascade order);
errors are made by ``not_found`` / ``stale`` so every backend words them alike.

``Broadcaster`` keeps the queues of open ``Subscription``s; ``publish`` puts events on each queue in
the same loop step, so every watcher sees them in the order they were published. Backends call it
only from the event loop thread. The rows of the SQL backends are ``atoll.store._sql``'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from atoll.errors import AlreadyExists, Conflict, FieldError, InvalidInput, NotFound, StoreError
from atoll.resources.meta import Resource
from atoll.store.protocol import ChangeEvent, Delete, EventKind, Events, Op, Page, Put, Subscription

Pending = tuple[EventKind, Resource[Any]]
Pendings = list[Pending]
"""(kind, resource) per event of a write, numbered at commit by ``number_events``."""


@dataclass(frozen=True, slots=True)
class Create:
    """``Store.create`` as a step of a write: nothing of that key may be stored."""

    resource: Resource[Any]


@dataclass(frozen=True, slots=True)
class Update:
    """``Store.update`` as a step of a write: the stored version must be ``resource.meta.version``."""

    resource: Resource[Any]


Step = Create | Update | Put | Delete
"""One step of a write; ``Put`` and ``Delete`` are what ``Store.apply`` takes."""


class Broadcaster:
    """The watchers of one store. Not thread-safe: use from the event loop only."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[ChangeEvent | None]] = set()
        self._closed = False

    def subscribe(self) -> Subscription:
        if self._closed:
            raise StoreError(CLOSED)
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


class BaseStore:
    """The writes, ``watch`` and ``close`` of every backend; each write is one call to the backend's ``_write``."""

    def __init__(self) -> None:
        self._watchers = Broadcaster()
        self._closed = False

    async def _write(self, steps: Sequence[Step]) -> Events:
        """Run ``steps`` in one transaction (all or none); publish their events and return them."""
        raise NotImplementedError

    async def create(self, resource: Resource[Any]) -> Resource[Any]:
        (event,) = await self._write([Create(resource)])
        return event.resource

    async def update(self, resource: Resource[Any]) -> Resource[Any]:
        (event,) = await self._write([Update(resource)])
        return event.resource

    async def delete(self, type: str, name: str, mesh: str | None = None, *, version: int | None = None) -> None:
        await self._write([Delete(type, name, mesh, version=version)])

    async def apply(self, ops: Sequence[Op]) -> Events:
        for op in ops:
            if not isinstance(op, Put | Delete):
                raise TypeError(f"not a store op: {op!r}")
        return await self._write(list(ops))

    def watch(self) -> Subscription:
        return self._watchers.subscribe()

    async def close(self) -> None:
        """Refuse further calls, release what the backend holds (``_release``), end every watch."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._release()
        finally:
            self._watchers.close()

    async def _release(self) -> None:
        """Close the backend's connections and threads (nothing to close by default)."""

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(CLOSED)


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


def plan_put(step: Create | Update | Put, stored: tuple[int, datetime | None] | None) -> Pending:
    """What writing ``step.resource`` over the stored (version, creation time), or over nothing, makes.

    ``Create``: nothing may be stored. ``Update``: the resource must be stored and ``meta.version``
    must be the stored one. ``Put``: version 0 means "whatever is stored (or nothing)". Raises
    ``AlreadyExists`` / ``NotFound`` / ``Conflict``; otherwise returns the event kind and the
    resource to store.
    """
    resource = step.resource
    if isinstance(step, Create):
        if stored is not None:
            raise AlreadyExists(f"{resource.key} already exists")
        return EventKind.CREATED, first_version(resource)
    upsert = isinstance(step, Put)
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


def plan_delete(op: Delete, gone: Resource[Any] | None, children: Iterable[Resource[Any]] = ()) -> Pendings:
    """The events of ``op`` deleting ``gone`` (``None``: nothing stored) and, for a Mesh, ``children``.

    Raises ``NotFound`` for nothing stored (no events with ``missing_ok``) and ``Conflict`` unless
    ``op.version`` is unset (``None``/0) or the stored one. Children come first, by (type, name).
    """
    if gone is None:
        if op.missing_ok:
            return []
        raise not_found(op.type, op.name, op.mesh)
    if op.version and op.version != gone.meta.version:
        raise stale(gone.key, op.version, gone.meta.version)
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
