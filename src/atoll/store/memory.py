"""In-memory store: a dict of resources guarded by the event loop (no awaits inside a write).

Used by tests and ``--store memory``. Watchers get events through unbounded queues filled in the
same step as the write, so event order is commit order. What a write means is ``BaseStore``'s and
``plan_put`` / ``plan_delete``'s, as for the SQL backends. A write of one step checks everything
before it changes the dict, so it runs on the dict itself; a batch (``apply``) runs on a copy that
is swapped in only when every step succeeded (all or nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atoll.resources.meta import Resource
from atoll.store._common import (
    BaseStore,
    Pendings,
    Step,
    check_paging,
    not_found,
    number_events,
    page,
    plan_delete,
    plan_put,
)
from atoll.store.protocol import Delete, Events, ListFilter, Page

_Key = tuple[str, str, str]  # (type, mesh or "", name)
_Items = dict[_Key, Resource[Any]]


def _key(type: str, name: str, mesh: str | None) -> _Key:
    return (type, mesh or "", name)


class MemoryStore(BaseStore):
    def __init__(self) -> None:
        super().__init__()
        self._items: _Items = {}
        self._revision = 0

    # -- Store protocol (writes, watch and close: ``BaseStore``) -------------------------------------

    async def get(self, type: str, name: str, mesh: str | None = None) -> Resource[Any]:
        self._check_open()
        r = self._items.get(_key(type, name, mesh))
        if r is None:
            raise not_found(type, name, mesh)
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
        return page(matches[offset:end], offset, len(matches))

    # -- helpers --------------------------------------------------------------------------------

    async def _write(self, steps: Sequence[Step]) -> Events:
        self._check_open()
        items = self._items if len(steps) == 1 else dict(self._items)
        pending = [p for step in steps for p in _step(items, step)]
        self._items = items
        events = number_events(pending, self._revision)
        self._revision += len(events)
        self._watchers.publish(events)
        return events


def _step(items: _Items, step: Step) -> Pendings:
    """Run one step on ``items``; it raises before it changes anything (see ``plan_put`` / ``plan_delete``)."""
    if isinstance(step, Delete):
        return _delete(items, step)
    k = _key(step.resource.type, step.resource.name, step.resource.mesh)
    cur = items.get(k)
    kind, stored = plan_put(step, None if cur is None else (cur.meta.version, cur.meta.creation_time))
    items[k] = stored
    return [(kind, stored)]


def _delete(items: _Items, op: Delete) -> Pendings:
    k = _key(op.type, op.name, op.mesh)
    gone = items.get(k)
    children = [r for r in items.values() if r.mesh == op.name] if gone is not None and op.type == "Mesh" else []
    events = plan_delete(op, gone, children)
    for r in children:
        del items[_key(r.type, r.name, r.mesh)]
    if gone is not None:
        del items[k]
    return events
