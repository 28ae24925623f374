"""SQLite store, the embedded default: one file (WAL mode), one connection, one worker thread.

Every call runs on a dedicated single-thread executor that owns the ``sqlite3`` connection, so the
event loop never blocks on disk and the connection is never shared between threads. Writes run in
``BEGIN IMMEDIATE`` transactions that also bump the store-wide revision (table ``store_revision``).
Right after ``COMMIT``, still on the worker thread, the write schedules the publication of its
events on the loop (``call_soon_threadsafe``). Those callbacks run in commit order (one thread,
FIFO) and before the caller's ``await`` resumes, so watchers see events in commit order, and a
write whose caller was cancelled still publishes what it committed.

``apply`` runs a batch of ``Put``/``Delete`` in one such transaction (all or nothing).

Migrations are ``migrations/sqlite/NNNN_*.sql`` (see ``_migrations``), applied at ``open`` in one
transaction. Watchers see the writes of this ``SqliteStore`` only; one control plane process owns
a file (other processes writing the same file stay consistent but are not watched).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from atoll.errors import AlreadyExists, ConfigError, StoreError
from atoll.resources.meta import Resource
from atoll.store import _migrations
from atoll.store._common import (
    CLOSED,
    COLUMNS,
    Broadcaster,
    Pending,
    Pendings,
    check_paging,
    check_version,
    first_version,
    mesh_column,
    not_found,
    number_events,
    page,
    plan_delete,
    plan_put,
    resource_from_row,
)
from atoll.store.protocol import ChangeEvent, Delete, EventKind, ListFilter, Op, Page, Put, Subscription

_Events = list[ChangeEvent]
T = TypeVar("T")


class SqliteStore:
    """A ``Store`` in one SQLite file. Create with ``await SqliteStore.open(path)``."""

    def __init__(self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        self.path = path
        self._executor = executor
        self._conn = conn
        self._loop = asyncio.get_running_loop()
        self._watchers = Broadcaster()
        self._closed = False

    @classmethod
    async def open(cls, path: Path | str, *, busy_timeout_ms: int = 5000) -> SqliteStore:
        """Open (creating the file and its parent folders) and migrate the store at ``path``."""
        path = Path(path)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atoll-sqlite")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, _connect, path, busy_timeout_ms)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, executor, conn)

    # -- Store protocol -------------------------------------------------------------------------

    async def create(self, resource: Resource[Any]) -> Resource[Any]:
        def run(conn: sqlite3.Connection) -> tuple[Resource[Any], Pendings]:
            stored = first_version(resource)
            try:
                conn.execute(f"INSERT INTO resources ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _row_params(stored))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"{resource.key} already exists") from None
            return stored, [(EventKind.CREATED, stored)]

        return await self._write(run)

    async def update(self, resource: Resource[Any]) -> Resource[Any]:
        def run(conn: sqlite3.Connection) -> tuple[Resource[Any], Pendings]:
            kind, stored = _put(conn, resource, upsert=False)
            return stored, [(kind, stored)]

        return await self._write(run)

    async def delete(self, type: str, name: str, mesh: str | None = None, *, version: int | None = None) -> None:
        def run(conn: sqlite3.Connection) -> tuple[None, Pendings]:
            return None, _delete(conn, Delete(type, name, mesh, version=version))

        await self._write(run)

    async def get(self, type: str, name: str, mesh: str | None = None) -> Resource[Any]:
        def run(conn: sqlite3.Connection) -> Resource[Any]:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM resources WHERE type = ? AND mesh = ? AND name = ?",
                (type, mesh_column(mesh), name),
            ).fetchone()
            if row is None:
                raise not_found(type, name, mesh)
            return _from_row(row)

        return await self._call(run)

    async def list(self, filter: ListFilter, *, offset: int = 0, limit: int | None = None) -> Page:
        check_paging(offset, limit)
        where = ["type = ?"]
        params: list[object] = [filter.type]
        if filter.mesh is not None:
            where.append("mesh = ?")
            params.append(filter.mesh)
        if filter.name_prefix:
            where.append("substr(name, 1, ?) = ?")
            params += [len(filter.name_prefix), filter.name_prefix]
        for k, v in sorted(filter.labels.items()):
            where.append("EXISTS (SELECT 1 FROM json_each(resources.labels) AS l WHERE l.key = ? AND l.value = ?)")
            params += [k, v]
        cond = " AND ".join(where)

        def run(conn: sqlite3.Connection) -> Page:
            conn.execute("BEGIN")  # one snapshot for the count and the page
            try:
                total = int(conn.execute(f"SELECT count(*) FROM resources WHERE {cond}", params).fetchone()[0])
                rows = conn.execute(
                    f"SELECT {COLUMNS} FROM resources WHERE {cond} ORDER BY mesh, name LIMIT ? OFFSET ?",
                    [*params, -1 if limit is None else limit, offset],
                ).fetchall()
            finally:
                conn.execute("COMMIT")
            return page([_from_row(r) for r in rows], offset, total)

        return await self._call(run)

    async def apply(self, ops: Sequence[Op]) -> _Events:
        ops = list(ops)

        def run(conn: sqlite3.Connection) -> tuple[None, Pendings]:
            pending: Pendings = []
            for op in ops:
                if isinstance(op, Put):
                    pending.append(_put(conn, op.resource, upsert=True))
                elif isinstance(op, Delete):
                    pending.extend(_delete(conn, op))
                else:
                    raise TypeError(f"not a store op: {op!r}")
            return None, pending

        _, events = await self._write_events(run)
        return events

    def watch(self) -> Subscription:
        return self._watchers.subscribe()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._loop.run_in_executor(self._executor, self._conn.close)
        finally:
            self._executor.shutdown(wait=True)
            self._watchers.close()

    # -- helpers --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def revision(self) -> int:
        """The store-wide revision of the last committed change (0 for a new store)."""
        return await self._call(_read_revision)

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError(CLOSED)
        conn = self._conn
        return await self._loop.run_in_executor(self._executor, fn, conn)

    async def _write(self, fn: Callable[[sqlite3.Connection], tuple[T, Pendings]]) -> T:
        """Run ``fn`` in a write transaction, number its events and publish them after commit."""
        result, _ = await self._write_events(fn)
        return result

    async def _write_events(self, fn: Callable[[sqlite3.Connection], tuple[T, Pendings]]) -> tuple[T, _Events]:
        """``_write`` that also returns the events it published."""

        def run(conn: sqlite3.Connection) -> tuple[T, _Events]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result, pending = fn(conn)
                revision = _read_revision(conn)
                events = number_events(pending, revision)
                conn.execute("UPDATE store_revision SET revision = ? WHERE id = 1", (revision + len(events),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                self._loop.call_soon_threadsafe(self._watchers.publish, events)
            except RuntimeError:  # the loop is closed: nobody is watching any more
                pass
            return result, events

        return await self._call(run)


def _put(conn: sqlite3.Connection, resource: Resource[Any], *, upsert: bool) -> Pending:
    """Write ``resource`` inside a transaction: ``update`` or, with ``upsert``, ``Put`` (see ``plan_put``)."""
    row = conn.execute(
        "SELECT version, creation_time FROM resources WHERE type = ? AND mesh = ? AND name = ?",
        (resource.type, mesh_column(resource.mesh), resource.name),
    ).fetchone()
    kind, stored = plan_put(
        resource, None if row is None else (int(row[0]), datetime.fromisoformat(row[1])), upsert=upsert
    )
    if kind is EventKind.CREATED:
        conn.execute(f"INSERT INTO resources ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _row_params(stored))
    else:
        conn.execute(
            "UPDATE resources SET version = ?, labels = ?, spec = ?, modification_time = ?"
            " WHERE type = ? AND mesh = ? AND name = ?",
            (
                stored.meta.version,
                _json(stored.meta.labels),
                _json(stored.spec_dict()),
                _iso(stored.meta.modification_time),
                stored.type,
                mesh_column(stored.mesh),
                stored.name,
            ),
        )
    return kind, stored


def _delete(conn: sqlite3.Connection, op: Delete) -> Pendings:
    """Delete inside a transaction (see ``Delete``)."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM resources WHERE type = ? AND mesh = ? AND name = ?",
        (op.type, mesh_column(op.mesh), op.name),
    ).fetchone()
    if row is None:
        if op.missing_ok:
            return []
        raise not_found(op.type, op.name, op.mesh)
    cur = _from_row(row)
    check_version(cur, op.version)
    children: list[Resource[Any]] = []
    if op.type == "Mesh":
        rows = conn.execute(f"SELECT {COLUMNS} FROM resources WHERE mesh = ?", (op.name,)).fetchall()
        children = [_from_row(r) for r in rows]
        conn.execute("DELETE FROM resources WHERE mesh = ?", (op.name,))
    conn.execute(
        "DELETE FROM resources WHERE type = ? AND mesh = ? AND name = ?", (op.type, mesh_column(op.mesh), op.name)
    )
    return plan_delete(cur, children)


def _connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=busy_timeout_ms / 1000)
    except (OSError, sqlite3.Error) as e:
        raise ConfigError(f"cannot open SQLite store at {path}: {e}") from None
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ConfigError(f"cannot switch SQLite store at {path} to WAL mode (got {mode})")
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise ConfigError(f"cannot use SQLite store at {path}: {e}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection, migrations: list[_migrations.Migration] | None = None) -> list[int]:
    """Apply the pending migrations in one transaction; return the versions applied."""
    migrations = _migrations.load("sqlite") if migrations is None else migrations
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for m in migrations:
            if m.version in done:
                continue
            for stmt in _statements(m.sql):
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (m.version, m.name, datetime.now(UTC).isoformat()),
            )
            applied.append(m.version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied


def _statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (``executescript`` would commit on its own)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    rest = "\n".join(ln for ln in buf.splitlines() if not ln.strip().startswith("--")).strip()
    if rest:
        raise RuntimeError(f"incomplete SQL statement at the end of a migration: {rest[:80]!r}")
    return out


def _read_revision(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT revision FROM store_revision WHERE id = 1").fetchone()[0])


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _iso(t: datetime | None) -> str:
    assert t is not None
    return t.isoformat()


def _row_params(r: Resource[Any]) -> tuple[object, ...]:
    return (
        r.type,
        mesh_column(r.mesh),
        r.name,
        r.meta.version,
        _json(dict(r.meta.labels)),
        _json(r.spec_dict()),
        _iso(r.meta.creation_time),
        _iso(r.meta.modification_time),
    )


def _from_row(row: tuple[Any, ...]) -> Resource[Any]:
    type, mesh, name, version, labels, spec, ctime, mtime = row
    return resource_from_row(
        type,
        mesh,
        name,
        version,
        json.loads(labels),
        json.loads(spec),
        datetime.fromisoformat(ctime),
        datetime.fromisoformat(mtime),
    )
