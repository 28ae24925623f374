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

from atoll.errors import ConfigError
from atoll.resources.meta import Resource
from atoll.store import _migrations
from atoll.store._common import BaseStore, Pendings, Step, check_paging, number_events, page, plan_delete, plan_put
from atoll.store._sql import COLUMNS, SqlRows
from atoll.store.protocol import Delete, Events, ListFilter, Page

T = TypeVar("T")


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _iso(t: datetime | None) -> str:
    assert t is not None
    return t.isoformat()


_LABEL = "EXISTS (SELECT 1 FROM json_each(resources.labels) AS l WHERE l.key = ? AND l.value = ?)"

ROWS = SqlRows(
    "?",
    write_json=_json,
    write_time=_iso,
    read_json=json.loads,
    read_time=datetime.fromisoformat,
    name_prefix=lambda prefix: ("substr(name, 1, ?) = ?", [len(prefix), prefix]),
    labels=lambda labels: [(_LABEL, [k, v]) for k, v in sorted(labels.items())],
)
"""JSON columns hold compact sorted text, times ISO 8601 text; a label filter is one clause a label."""


class SqliteStore(BaseStore):
    """A ``Store`` in one SQLite file. Create with ``await SqliteStore.open(path)``."""

    def __init__(self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        self.path = path
        self._executor = executor
        self._conn = conn
        self._loop = asyncio.get_running_loop()
        super().__init__()

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

    # -- Store protocol (writes, watch and close: ``BaseStore``) -------------------------------------

    async def get(self, type: str, name: str, mesh: str | None = None) -> Resource[Any]:
        def run(conn: sqlite3.Connection) -> Resource[Any]:
            return ROWS.found(conn.execute(ROWS.select, ROWS.key(type, name, mesh)).fetchone(), type, name, mesh)

        return await self._call(run)

    async def list(self, filter: ListFilter, *, offset: int = 0, limit: int | None = None) -> Page:
        check_paging(offset, limit)
        q = ROWS.listing(filter)

        def run(conn: sqlite3.Connection) -> Page:
            conn.execute("BEGIN")  # one snapshot for the count and the page
            try:
                total = int(conn.execute(q.count, q.params).fetchone()[0])
                rows = conn.execute(q.page, [*q.params, -1 if limit is None else limit, offset]).fetchall()
            finally:
                conn.execute("COMMIT")
            return page([ROWS.resource(r) for r in rows], offset, total)

        return await self._call(run)

    async def _release(self) -> None:
        """Close the connection on its thread, then end the thread."""
        try:
            await self._loop.run_in_executor(self._executor, self._conn.close)
        finally:
            self._executor.shutdown(wait=True)

    # -- helpers --------------------------------------------------------------------------------

    async def revision(self) -> int:
        """The store-wide revision of the last committed change (0 for a new store)."""
        return await self._call(_read_revision)

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()
        conn = self._conn
        return await self._loop.run_in_executor(self._executor, fn, conn)

    async def _write(self, steps: Sequence[Step]) -> Events:
        """Run ``steps`` in a write transaction, number their events and publish them after commit."""

        def run(conn: sqlite3.Connection) -> Events:
            conn.execute("BEGIN IMMEDIATE")
            try:
                pending = [p for step in steps for p in _step(conn, step)]
                revision = _read_revision(conn)
                events = number_events(pending, revision)
                conn.execute(ROWS.set_revision, (revision + len(events),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                self._loop.call_soon_threadsafe(self._watchers.publish, events)
            except RuntimeError:  # the loop is closed: nobody is watching any more
                pass
            return events

        return await self._call(run)


def _step(conn: sqlite3.Connection, step: Step) -> Pendings:
    """Run one step inside a transaction (see ``plan_put`` / ``plan_delete``)."""
    if isinstance(step, Delete):
        return _delete(conn, step)
    kind, stored = plan_put(step, ROWS.stored(conn.execute(ROWS.select_stored, ROWS.key_of(step.resource)).fetchone()))
    conn.execute(*ROWS.write(kind, stored))
    return [(kind, stored)]


def _delete(conn: sqlite3.Connection, op: Delete) -> Pendings:
    """Delete inside a transaction (see ``Delete``)."""
    row = conn.execute(ROWS.select, ROWS.key(op.type, op.name, op.mesh)).fetchone()
    gone = None if row is None else ROWS.resource(row)
    children: list[Resource[Any]] = []
    if gone is not None and op.type == "Mesh":
        children = [ROWS.resource(r) for r in conn.execute(f"SELECT {COLUMNS} {ROWS.in_mesh}", (op.name,)).fetchall()]
    events = plan_delete(op, gone, children)
    if children:
        conn.execute(f"DELETE {ROWS.in_mesh}", (op.name,))
    if gone is not None:
        conn.execute(ROWS.delete, ROWS.key(op.type, op.name, op.mesh))
    return events


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
