"""The storage protocol every backend implements, and the values it trades in.

Operations: ``create``, ``update``, ``delete``, ``get``, ``list``, ``watch`` and ``apply`` (a batch of
``Put``/``Delete`` in one transaction: all or nothing, events emitted in order after the commit). Every resource has a
``meta.version`` (1 on create, +1 on each update); ``update`` and ``delete`` given a version that is
not the stored one raise ``Conflict`` (optimistic concurrency; version 0 / ``None`` on delete means
"whatever is stored"). Deleting a ``Mesh`` deletes every resource whose ``meta.mesh`` names it, in
the same transaction. Every successful write emits ``ChangeEvent``s, in commit order, to every
``watch`` iterator; ``revision`` is a store-wide counter that grows with each event.

Backends: ``memory`` (tests, experiments), ``sqlite`` (embedded default), ``postgres`` (HA). One
contract suite (``tests/store/test_contract.py``) runs unchanged against each.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from atoll.resources.meta import Resource


class EventKind(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    kind: EventKind
    resource: Resource[Any]  # for DELETED: the last stored state
    revision: int


@dataclass(frozen=True, slots=True)
class ListFilter:
    """What ``list`` returns: one type, optionally one mesh, a name prefix and required labels."""

    type: str
    mesh: str | None = None
    name_prefix: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a ``list``: items sorted by (mesh, name); ``total`` counts every match;
    ``next_offset`` is ``None`` on the last page."""

    items: list[Resource[Any]]
    total: int
    next_offset: int | None


@dataclass(frozen=True, slots=True)
class Put:
    """Create ``resource``, or replace the spec and labels of the stored one (an upsert).

    ``resource.meta.version`` 0 means "whatever is stored (or nothing)"; any other version must be
    the stored one (``Conflict``; ``NotFound`` if there is none)."""

    resource: Resource[Any]


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove a resource (a Mesh with everything in it). ``version`` as in ``Store.delete``;
    ``missing_ok`` turns ``NotFound`` into a no-op."""

    type: str
    name: str
    mesh: str | None = None
    version: int | None = None
    missing_ok: bool = False


Op = Put | Delete
Events = list[ChangeEvent]


class Subscription:
    """An async iterator of ``ChangeEvent``s, registered when created (so no change committed after
    ``watch()`` returns is missed). Ends when the store closes or ``close()`` is called."""

    def __init__(self, queue: asyncio.Queue[ChangeEvent | None], on_close: Callable[[], None]) -> None:
        self._queue = queue
        self._on_close = on_close
        self._closed = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ChangeEvent:
        if self._closed:
            raise StopAsyncIteration
        ev = await self._queue.get()
        if ev is None:
            self.close()
            raise StopAsyncIteration
        return ev

    def pending(self) -> int:
        """Events queued and not yet read."""
        return self._queue.qsize()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_close()


class Store(Protocol):
    async def create(self, resource: Resource[Any]) -> Resource[Any]:
        """Store a new resource. Returns it with version 1 and times set. ``AlreadyExists``."""
        ...

    async def update(self, resource: Resource[Any]) -> Resource[Any]:
        """Replace spec and labels. ``resource.meta.version`` must be the stored version
        (``Conflict`` otherwise, ``NotFound`` if absent). Returns it with version + 1."""
        ...

    async def delete(self, type: str, name: str, mesh: str | None = None, *, version: int | None = None) -> None:
        """Remove a resource (and, for a Mesh, everything in it). ``NotFound``, ``Conflict``."""
        ...

    async def get(self, type: str, name: str, mesh: str | None = None) -> Resource[Any]:
        """The stored resource, or ``NotFound``."""
        ...

    async def list(self, filter: ListFilter, *, offset: int = 0, limit: int | None = None) -> Page:
        """Matching resources sorted by (mesh, name), paged by ``offset``/``limit``."""
        ...

    async def apply(self, ops: Sequence[Op]) -> Events:
        """Run every op in one transaction, in order (later ops see earlier ones). All or nothing:
        the first failing op (``NotFound``, ``Conflict``) rolls back the batch. Returns the events,
        which watchers also get, in order, after the commit."""
        ...

    def watch(self) -> Subscription:
        """Every change committed after this call, in order, until the iterator is closed."""
        ...

    async def close(self) -> None:
        """Release connections; further calls are errors."""
        ...


async def list_all(store: Store, filter: ListFilter, *, page_size: int = 1000) -> list[Resource[Any]]:
    """Every resource ``filter`` matches, read ``page_size`` at a time, in ``Store.list``'s order."""
    out: list[Resource[Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = await store.list(filter, offset=offset, limit=page_size)
        out.extend(page.items)
        offset = page.next_offset
    return out
