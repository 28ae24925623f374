"""Coordination of control-plane instances that share a store: leases and the instance registry.

Two things, next to the resources, that several CP instances on one database must agree on:

- **Leases** (``try_lease``/``release_lease``). A lease has a name (one per role: ``zone/<zone>``,
  ``global``), a holder (an instance id), a *term* and an expiry. ``try_lease(name, holder, ttl)``
  grants (or renews) the lease when it is free, expired, or already the caller's, and returns its
  term; otherwise ``None``. The term grows by one every time the lease is granted to a holder that did
  not hold it unexpired a moment before, so it is a fencing token: a deposed holder's term is always
  smaller than its successor's. Expiry is decided by one clock only (the database's, for PostgreSQL),
  so the instances' clocks never have to agree. ``release_lease`` expires the caller's lease at once
  (a graceful stop hands over without waiting out the ttl).
- **The instance registry** (``heartbeat``/``instances``/``prune``). Each instance upserts one
  ``InstanceRecord`` every few seconds: its id, role, start time and a JSON report (address, version,
  leader flag, the proxies and zones it holds, their insights). ``instances()`` returns every row with
  its age in seconds (measured by the same single clock); ``prune(older_than)`` deletes rows of
  instances that stopped beating and returns them, so the leader can clean up after a dead instance.

``MemoryCoordination`` keeps both in memory with an injected clock: the coordination of SQLite and
memory stores (one instance per data dir: the data-dir lock sees to it, so it always grants), and the
fake the unit tests run several electors against. ``atoll.store.pg_coordination`` is the PostgreSQL
implementation (tables of migration ``0002_coordination``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """One CP instance's row in the registry. ``age`` is the seconds since its last heartbeat."""

    id: str
    role: str
    started_at: float
    report: Mapping[str, Any] = field(default_factory=dict)
    age: float = 0.0


class Coordination(Protocol):
    async def try_lease(self, name: str, holder: str, ttl: float) -> int | None:
        """Grant or renew ``name`` to ``holder`` for ``ttl`` seconds; its term, or ``None`` if held by
        another. ``StoreError`` when the store cannot answer."""
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Expire ``name`` now if ``holder`` holds it."""
        ...

    async def heartbeat(self, record: InstanceRecord) -> None:
        """Upsert ``record`` with the heartbeat time set to now."""
        ...

    async def instances(self, role: str | None = None) -> list[InstanceRecord]:
        """Every registered instance (of ``role``), oldest start first, with its heartbeat age."""
        ...

    async def remove_instance(self, instance_id: str) -> None:
        """Delete one instance's row (a graceful stop)."""
        ...

    async def prune(self, role: str, older_than: float) -> list[InstanceRecord]:
        """Delete the rows of ``role`` whose heartbeat is older than ``older_than`` seconds; return them."""
        ...

    async def close(self) -> None: ...


@dataclass
class _Lease:
    holder: str
    term: int
    expires_at: float


@dataclass
class _Row:
    record: InstanceRecord
    beat_at: float


class MemoryCoordination:
    """Leases and the registry in memory, with one injected clock (module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._leases: dict[str, _Lease] = {}
        self._rows: dict[str, _Row] = {}

    async def try_lease(self, name: str, holder: str, ttl: float) -> int | None:
        now = self._clock()
        cur = self._leases.get(name)
        if cur is not None and cur.expires_at > now and cur.holder != holder:
            return None
        same = cur is not None and cur.holder == holder and cur.expires_at > now
        term = (cur.term if same else cur.term + 1) if cur is not None else 1
        self._leases[name] = _Lease(holder, term, now + ttl)
        return term

    async def release_lease(self, name: str, holder: str) -> None:
        cur = self._leases.get(name)
        if cur is not None and cur.holder == holder:
            cur.expires_at = self._clock()

    async def heartbeat(self, record: InstanceRecord) -> None:
        self._rows[record.id] = _Row(record, self._clock())

    async def instances(self, role: str | None = None) -> list[InstanceRecord]:
        now = self._clock()
        rows = [r for r in self._rows.values() if role is None or r.record.role == role]
        rows.sort(key=lambda r: (r.record.started_at, r.record.id))
        return [_aged(r.record, now - r.beat_at) for r in rows]

    async def remove_instance(self, instance_id: str) -> None:
        self._rows.pop(instance_id, None)

    async def prune(self, role: str, older_than: float) -> list[InstanceRecord]:
        now = self._clock()
        gone = [r for r in self._rows.values() if r.record.role == role and now - r.beat_at > older_than]
        for r in gone:
            del self._rows[r.record.id]
        return [_aged(r.record, now - r.beat_at) for r in gone]

    async def close(self) -> None:
        return None


def _aged(record: InstanceRecord, age: float) -> InstanceRecord:
    return InstanceRecord(record.id, record.role, record.started_at, record.report, age)
