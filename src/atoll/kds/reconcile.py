"""Apply what a peer sent to the local store: a full set reconciles, a delta patches.

A ``StoreSink`` knows which local resources the stream owns (``scope``: the labels every copy it
made carries, e.g. ``kuma.io/origin: zone, kuma.io/zone: zone-1`` at global) and how a received
resource becomes a local copy (``adopt``: rename and label). ``apply(batch)`` then:

- full set: lists the type's resources in scope, and in **one** ``Store.apply`` transaction puts
  every received resource that is missing or differs (spec or labels) and deletes every one in
  scope that the peer no longer has (except those the peer sent but we could not read: a bad
  resource is never a reason to delete the good copy we hold);
- delta: puts the received resources and deletes the removed ones that are in scope, again in one
  transaction.

Resources outside the scope (written locally, or from another zone) are never deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from atoll.kds.protocol import Batch
from atoll.kds.wire import split_wire_name
from atoll.resources.meta import Resource
from atoll.store.protocol import ChangeEvent, Delete, ListFilter, Op, Put, Store

Adopt = Callable[[Resource[Any]], Resource[Any]]
LocalName = Callable[[str, str | None], str]

_Key = tuple[str | None, str]  # (mesh, name)


def _same(a: Resource[Any], b: Resource[Any]) -> bool:
    return a.spec == b.spec and dict(a.meta.labels) == dict(b.meta.labels)


def _in_scope(r: Resource[Any], scope: Mapping[str, str]) -> bool:
    return all(r.meta.labels.get(k) == v for k, v in scope.items())


class StoreSink:
    """Writes received batches into ``store`` (see the module docstring)."""

    def __init__(self, store: Store, *, scope: Mapping[str, str], adopt: Adopt, local_name: LocalName) -> None:
        self.store = store
        self.scope = dict(scope)
        self._adopt = adopt
        self._local_name = local_name

    async def plan(self, batch: Batch) -> list[Op]:
        """The store ops that ``apply`` would run for ``batch``."""
        desired = {(r.mesh, r.name): r for r in map(self._adopt, batch.resources)}
        if batch.full:
            page = await self.store.list(ListFilter(type=batch.type, labels=self.scope))
            existing: dict[_Key, Resource[Any]] = {(r.mesh, r.name): r for r in page.items}
            keep = {(mesh, self._local_name(name, mesh)) for name, mesh in map(split_wire_name, batch.refused)}
            ops: list[Op] = [Put(r) for k, r in desired.items() if k not in existing or not _same(existing[k], r)]
            for k, cur in existing.items():
                if k not in desired and k not in keep:
                    ops.append(Delete(batch.type, cur.name, cur.mesh, version=cur.meta.version, missing_ok=True))
            return ops
        ops = [Put(r) for r in desired.values()]
        for name, mesh in batch.removed:
            local = self._local_name(name, mesh)
            if (mesh, local) in desired:
                continue
            try:
                cur = await self.store.get(batch.type, local, mesh)
            except Exception:  # NotFound (already gone) or unreadable: nothing of ours to delete
                continue
            if _in_scope(cur, self.scope):
                ops.append(Delete(batch.type, cur.name, cur.mesh, version=cur.meta.version, missing_ok=True))
        return ops

    async def apply(self, batch: Batch) -> list[ChangeEvent]:
        """Reconcile (full set) or patch (delta) the store in one transaction; returns its events."""
        ops = await self.plan(batch)
        if not ops:
            return []
        return await self.store.apply(ops)
