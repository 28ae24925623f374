"""PostgreSQL store for HA control planes: several instances share one database and see each
other's writes in ``watch()``.

Driver: psycopg 3 (async) with a ``psycopg_pool`` connection pool; one extra connection LISTENs.

Writes. Each write is one transaction that first locks the single row of ``store_revision``
(``SELECT ... FOR UPDATE``). That serialises writers across every instance, so revisions are
handed out in commit order. The transaction changes ``resources``, appends one row per change
event to ``store_events`` (the full resource, for DELETED its last state), stores the new
revision and sends ``NOTIFY atoll_store_changes, '<revision>'``.

``apply`` runs a batch of ``Create``/``Put``/``Delete`` in one such transaction (all or nothing): its events
get consecutive revisions and are published together.

Events. Each instance remembers the last revision it published. On a notification, and right
after each of its own commits, it reads ``store_events`` past that revision in order and publishes
them to its watchers (under a lock, so publication is in revision order). So a write returns only
after its events are queued for this instance's watchers, a write whose caller was cancelled is
published by the listener, and a notification lost while the LISTEN connection was reconnecting is
made up for by the catch-up done on reconnect. Writers prune events older than ``EVENTS_KEPT``
revisions.

Connections. The pool checks a connection before lending it (one empty round trip), so after a server
restart or a dropped connection the next operation gets a fresh one instead of failing.

Migrations are ``migrations/postgres/NNNN_*.sql``, applied at ``open`` in one transaction under an
advisory lock, so instances starting together migrate once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from atoll.errors import InvalidInput, StoreError
from atoll.resources.meta import Resource
from atoll.store import _migrations
from atoll.store._common import BaseStore, Pendings, Step, check_paging, number_events, page, plan_delete, plan_put
from atoll.store._sql import COLUMNS, SqlRows
from atoll.store.protocol import ChangeEvent, Delete, EventKind, Events, ListFilter, Page

log = logging.getLogger(__name__)

T = TypeVar("T")
Conn = psycopg.AsyncConnection[TupleRow]


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC)


ROWS = SqlRows(
    "%s",
    write_json=Jsonb,
    write_time=lambda t: t,
    read_json=lambda v: v,
    read_time=_utc,
    name_prefix=lambda prefix: ("starts_with(name, %s)", [prefix]),
    labels=lambda labels: [("labels @> %s", [Jsonb(dict(labels))])],
)
"""JSON columns are JSONB (psycopg reads them back as dicts), times ``timestamptz`` read back in UTC;
a label filter is one JSONB containment."""

CHANNEL = "atoll_store_changes"
EVENTS_KEPT = 10_000
_MIGRATION_LOCK = 0x61746F6C6C  # "atoll": pg_advisory_xact_lock key for migrations


class PostgresStore(BaseStore):
    """A ``Store`` in a PostgreSQL database. Create with ``await PostgresStore.open(dsn)``."""

    def __init__(self, dsn: str, pool: AsyncConnectionPool[Conn], revision: int) -> None:
        self._dsn = dsn
        self._pool = pool
        self._published = revision
        self._publish_lock = asyncio.Lock()
        super().__init__()
        self._listening = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, dsn: str, *, max_connections: int = 8, connect_timeout: float = 10.0) -> PostgresStore:
        """Connect, migrate, start listening for changes. ``StoreError`` if the server is unreachable."""
        try:
            conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=int(connect_timeout))
        except psycopg.Error as e:
            raise StoreError(f"cannot connect to PostgreSQL: {e}".strip()) from None
        try:
            await migrate(conn)
            revision = await _read_revision(conn)
        finally:
            await conn.close()
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True},
            open=False,
            name="atoll-store",
            check=AsyncConnectionPool.check_connection,  # a connection the server dropped is replaced
        )
        await pool.open(wait=True, timeout=connect_timeout)
        store = cls(dsn, pool, revision)
        store._listener = asyncio.create_task(store._listen(), name="atoll-postgres-listen")
        try:
            await asyncio.wait_for(store._listening.wait(), connect_timeout)
        except BaseException:
            await store.close()
            raise
        return store

    # -- Store protocol (writes, watch and close: ``BaseStore``) -------------------------------------

    async def get(self, type: str, name: str, mesh: str | None = None) -> Resource[Any]:
        async def run(conn: Conn) -> Resource[Any]:
            cur = await conn.execute(ROWS.select, ROWS.key(type, name, mesh))
            return ROWS.found(await cur.fetchone(), type, name, mesh)

        return await self._call(run)

    async def list(self, filter: ListFilter, *, offset: int = 0, limit: int | None = None) -> Page:
        check_paging(offset, limit)
        q = ROWS.listing(filter)

        async def run(conn: Conn) -> Page:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                cur = await conn.execute(q.count, q.params)
                total_row = await cur.fetchone()
                cur = await conn.execute(q.page, [*q.params, limit, offset])
                rows = await cur.fetchall()
            return page([ROWS.resource(r) for r in rows], offset, int(total_row[0]) if total_row else 0)

        return await self._call(run)

    async def _release(self) -> None:
        """Stop listening, then close the pool."""
        try:
            if self._listener is not None:
                self._listener.cancel()
                try:
                    await self._listener
                except asyncio.CancelledError:
                    pass
        finally:
            await self._pool.close()

    # -- helpers --------------------------------------------------------------------------------

    async def revision(self) -> int:
        """The store-wide revision of the last committed change (0 for a new database)."""
        return await self._call(_read_revision)

    async def _call(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        self._check_open()
        try:
            async with self._pool.connection() as conn:
                return await fn(conn)
        except psycopg.Error as e:
            raise StoreError(f"PostgreSQL: {e}") from e

    async def _write(self, steps: Sequence[Step]) -> Events:
        """Run ``steps`` in a write transaction, log and announce their events, then publish them here."""
        events: Events = []

        async def run(conn: Conn) -> int:
            events.clear()
            async with conn.transaction():
                revision = await _read_revision(conn, lock=True)
                pending = [p for step in steps for p in await _step(conn, step)]
                if not pending:
                    return revision
                events.extend(number_events(pending, revision))
                async with conn.cursor() as cur:
                    await cur.executemany(
                        f"INSERT INTO store_events (revision, kind, {COLUMNS})"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [(ev.revision, ev.kind.value, *ROWS.params(ev.resource)) for ev in events],
                    )
                revision += len(pending)
                await conn.execute(ROWS.set_revision, (revision,))
                if revision > EVENTS_KEPT:
                    await conn.execute("DELETE FROM store_events WHERE revision <= %s", (revision - EVENTS_KEPT,))
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(revision)))
            return revision

        revision = await self._call(run)
        await self._catch_up(revision)
        return list(events)

    async def _catch_up(self, upto: int | None = None) -> None:
        """Publish every logged event past the last published one (at least up to ``upto``)."""
        async with self._publish_lock:
            if upto is not None and self._published >= upto:
                return
            published = self._published

            async def fetch(conn: Conn) -> list[tuple[Any, ...]]:
                cur = await conn.execute(
                    f"SELECT revision, kind, {COLUMNS} FROM store_events WHERE revision > %s ORDER BY revision",
                    (published,),
                )
                return await cur.fetchall()

            rows = await self._call(fetch)
            if rows and rows[0][0] != published + 1:
                log.warning(
                    "store events %d..%d were pruned before this instance read them; watchers missed them",
                    published + 1,
                    rows[0][0] - 1,
                )
            events = []
            for row in rows:
                try:
                    events.append(ChangeEvent(EventKind(row[1]), ROWS.resource(row[2:]), int(row[0])))
                except InvalidInput as e:  # e.g. written by a newer Atoll with a type this one lacks
                    log.error("store event %d (%s %s) cannot be read, skipped: %s", row[0], row[2], row[4], e)
            if rows:
                self._published = int(rows[-1][0])
                self._watchers.publish(events)

    async def _listen(self) -> None:
        """Keep a LISTEN connection; catch up after each notification and after each (re)connect."""
        delay = 0.1
        while not self._closed:
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await self._catch_up()
                    self._listening.set()
                    delay = 0.1
                    async for note in conn.notifies():
                        try:
                            upto = int(note.payload)
                        except ValueError:
                            upto = None
                        await self._catch_up(upto)
            except Exception as e:  # keep listening whatever happened; the catch-up repairs gaps
                if self._closed:
                    return
                log.warning("store change listener failed (%s); reconnecting in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


async def _step(conn: Conn, step: Step) -> Pendings:
    """Run one step inside a transaction (see ``plan_put`` / ``plan_delete``)."""
    if isinstance(step, Delete):
        return await _delete(conn, step)
    cur = await conn.execute(ROWS.select_stored + " FOR UPDATE", ROWS.key_of(step.resource))
    planned = plan_put(step, ROWS.stored(await cur.fetchone()))
    if planned is None:
        return []
    await conn.execute(*ROWS.write(*planned))
    return [planned]


async def _delete(conn: Conn, op: Delete) -> Pendings:
    """Delete inside a transaction (see ``Delete``)."""
    cur = await conn.execute(f"{ROWS.delete} RETURNING {COLUMNS}", ROWS.key(op.type, op.name, op.mesh))
    row = await cur.fetchone()
    gone = None if row is None else ROWS.resource(row)
    children: list[Resource[Any]] = []
    if gone is not None and op.type == "Mesh":
        cur = await conn.execute(f"DELETE {ROWS.in_mesh} RETURNING {COLUMNS}", (op.name,))
        children = [ROWS.resource(r) for r in await cur.fetchall()]
    return plan_delete(op, gone, children)  # a Conflict rolls the whole transaction back


async def migrate(conn: Conn, migrations: list[_migrations.Migration] | None = None) -> list[int]:
    """Apply the pending migrations in one transaction under an advisory lock; return their versions."""
    migrations = _migrations.load("postgres") if migrations is None else migrations
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {int(r[0]) for r in await cur.fetchall()}
        for m in migrations:
            if m.version in done:
                continue
            await conn.execute(m.sql.encode())  # a script: several statements, no parameters
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (m.version, m.name))
            applied.append(m.version)
    return applied


async def _read_revision(conn: Conn, lock: bool = False) -> int:
    sql = "SELECT revision FROM store_revision WHERE id = 1" + (" FOR UPDATE" if lock else "")
    cur = await conn.execute(sql)
    row = await cur.fetchone()
    assert row is not None, "store_revision has no row: migration 0001 did not run"
    return int(row[0])
