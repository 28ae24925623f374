"""In-memory store: a dict of resources guarded by the event loop (no awaits inside a write).

Used by tests and ``--store memory``. Watchers get events through unbounded queues filled in the
same step as the write, so event order is commit order. ``apply`` runs its ops on a copy of the dict
and swaps it in only when every op succeeded (all or nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from atoll.errors import AlreadyExists, Conflict, NotFound, StoreError
from atoll.resources.meta import Resource
from atoll.store._common import CLOSED, check_paging
from atoll.store.protocol import ChangeEvent, Delete, EventKind, ListFilter, Op, Page, Put, Subscription

_Events = list[ChangeEvent]
_Key = tuple[str, str, str]  # (type, mesh or "", name)


def _key(type: str, name: str, mesh: str | None) -> _Key:
    return (type, mesh or "", name)


class MemoryStore:
    def __init__(self) -> None:
        self._items: dict[_Key, Resource[Any]] = {}
        self._watchers: set[asyncio.Queue[ChangeEvent | None]] = set()
        self._revision = 0
        self._closed = False

    async def create(self, resource: Resource[Any]) -> Resource[Any]:
        self._check_open()
        k = _key(resource.type, resource.name, resource.mesh)
        if k in self._items:
            raise AlreadyExists(f"{resource.key} already exists")
        now = datetime.now(UTC)
        stored = resource.with_meta(version=1, creation_time=now, modification_time=now)
        self._items[k] = stored
        self._emit(EventKind.CREATED, stored)
        return stored

    async def update(self, resource: Resource[Any]) -> Resource[Any]:
        self._check_open()
        k = _key(resource.type, resource.name, resource.mesh)
        cur = self._items.get(k)
        if cur is None:
            raise NotFound(f"{resource.key} not found")
        if resource.meta.version != cur.meta.version:
            raise Conflict(
                f"{resource.key}: version {resource.meta.version} is stale, stored version is {cur.meta.version}"
            )
        stored = resource.with_meta(
            version=cur.meta.version + 1,
            creation_time=cur.meta.creation_time,
            modification_time=datetime.now(UTC),
        )
        self._items[k] = stored
        self._emit(EventKind.UPDATED, stored)
        return stored

    async def delete(self, type: str, name: str, mesh: str | None = None, *, version: int | None = None) -> None:
        self._check_open()
        k = _key(type, name, mesh)
        cur = self._items.get(k)
        if cur is None:
            raise NotFound(f"{type} {name} not found")
        if version and version != cur.meta.version:
            raise Conflict(f"{cur.key}: version {version} is stale, stored version is {cur.meta.version}")
        if type == "Mesh":
            for ck, r in sorted(self._items.items()):
                if r.mesh == name:
                    del self._items[ck]
                    self._emit(EventKind.DELETED, r)
        del self._items[k]
        self._emit(EventKind.DELETED, cur)

    async def get(self, type: str, name: str, mesh: str | None = None) -> Resource[Any]:
        self._check_open()
        r = self._items.get(_key(type, name, mesh))
        if r is None:
            where = f" in mesh {mesh}" if mesh else ""
            raise NotFound(f"{type} {name}{where} not found")
        return r

    async def list(self, filter: ListFilter, *, offset: int = 0, limit: int | None = None) -> Page:
        self._check_open()
        check_paging(offset, limit)
        matches = [
            r
            for (t, m, n), r in self._items.items()
            if t == filter.type
            and (filter.mesh is None or m == filter.mesh)
            and (not filter.name_prefix or n.startswith(filter.name_prefix))
            and all(r.meta.labels.get(lk) == lv for lk, lv in filter.labels.items())
        ]
        matches.sort(key=lambda r: (r.mesh or "", r.name))
        end = len(matches) if limit is None else offset + limit
        items = matches[offset:end]
        return Page(items=items, total=len(matches), next_offset=end if end < len(matches) else None)

    async def apply(self, ops: Sequence[Op]) -> _Events:
        self._check_open()
        items = dict(self._items)
        pending: list[tuple[EventKind, Resource[Any]]] = []
        for op in ops:
            if isinstance(op, Put):
                pending.append(_put(items, op.resource))
            elif isinstance(op, Delete):
                pending.extend(_delete(items, op))
            else:
                raise TypeError(f"not a store op: {op!r}")
        self._items = items
        return [self._emit(kind, r) for kind, r in pending]

    def watch(self) -> Subscription:
        self._check_open()
        q: asyncio.Queue[ChangeEvent | None] = asyncio.Queue()
        self._watchers.add(q)
        return Subscription(q, lambda: self._watchers.discard(q))

    async def close(self) -> None:
        self._closed = True
        for q in self._watchers:
            q.put_nowait(None)
        self._watchers.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(CLOSED)

    def _emit(self, kind: EventKind, r: Resource[Any]) -> ChangeEvent:
        self._revision += 1
        ev = ChangeEvent(kind, r, self._revision)
        for q in self._watchers:
            q.put_nowait(ev)
        return ev


def _put(items: dict[_Key, Resource[Any]], resource: Resource[Any]) -> tuple[EventKind, Resource[Any]]:
    k = _key(resource.type, resource.name, resource.mesh)
    cur = items.get(k)
    now = datetime.now(UTC)
    if cur is None:
        if resource.meta.version:
            raise NotFound(f"{resource.key} not found")
        stored = resource.with_meta(version=1, creation_time=now, modification_time=now)
        items[k] = stored
        return EventKind.CREATED, stored
    if resource.meta.version and resource.meta.version != cur.meta.version:
        raise Conflict(
            f"{resource.key}: version {resource.meta.version} is stale, stored version is {cur.meta.version}"
        )
    stored = resource.with_meta(
        version=cur.meta.version + 1, creation_time=cur.meta.creation_time, modification_time=now
    )
    items[k] = stored
    return EventKind.UPDATED, stored


def _delete(items: dict[_Key, Resource[Any]], op: Delete) -> list[tuple[EventKind, Resource[Any]]]:
    k = _key(op.type, op.name, op.mesh)
    cur = items.get(k)
    if cur is None:
        if op.missing_ok:
            return []
        raise NotFound(f"{op.type} {op.name} not found")
    if op.version and op.version != cur.meta.version:
        raise Conflict(f"{cur.key}: version {op.version} is stale, stored version is {cur.meta.version}")
    out: list[tuple[EventKind, Resource[Any]]] = []
    if op.type == "Mesh":
        for ck, r in sorted(items.items()):
            if r.mesh == op.name:
                del items[ck]
                out.append((EventKind.DELETED, r))
    del items[k]
    out.append((EventKind.DELETED, cur))
    return out
