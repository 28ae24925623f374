"""Leases and the instance registry in PostgreSQL (the ``Coordination`` of ``atoll.store.coordination``).

Tables ``cp_leases`` and ``cp_instances`` (migration ``0002_coordination``; the store's ``open`` runs it).
Each call is one autocommit statement on a connection of its own, kept open between calls (never one
of the store's pool: a busy pool must not delay a lease renewal) and re-dialled after any error.
Calls are serialised by a lock.

A lease is granted by one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` that compares the expiry with
``clock_timestamp()``: the database's clock decides, and the statement is atomic, so two instances
can never both be granted an unexpired lease. The term is kept when the same holder renews an
unexpired lease and grows by one otherwise. Ages in the registry are computed by the database too.

A call that does not answer (the database is partitioned away) does not return by itself: callers
bound it (``atoll.cp.leader`` does, without waiting for psycopg's cancellation).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from atoll.errors import StoreError
from atoll.store.coordination import InstanceRecord

Conn = psycopg.AsyncConnection[TupleRow]

_TRY_LEASE = """
INSERT INTO cp_leases AS l (name, holder, term, expires_at)
VALUES (%(name)s, %(holder)s, 1, clock_timestamp() + make_interval(secs => %(ttl)s))
ON CONFLICT (name) DO UPDATE SET
    holder = EXCLUDED.holder,
    term = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp() THEN l.term ELSE l.term + 1 END,
    expires_at = EXCLUDED.expires_at
WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
RETURNING term
"""

_INSTANCE_COLUMNS = "id, role, started_at, report, extract(epoch FROM clock_timestamp() - heartbeat_at)"


class PgCoordination:
    """``Coordination`` over PostgreSQL (module docstring). ``dsn`` as for ``PostgresStore``."""

    def __init__(self, dsn: str, *, connect_timeout: float = 3.0) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._conn: Conn | None = None
        self._lock = asyncio.Lock()

    async def try_lease(self, name: str, holder: str, ttl: float) -> int | None:
        rows = await self._run(_TRY_LEASE, {"name": name, "holder": holder, "ttl": ttl})
        return int(rows[0][0]) if rows else None

    async def release_lease(self, name: str, holder: str) -> None:
        await self._run(
            "UPDATE cp_leases SET expires_at = clock_timestamp() WHERE name = %s AND holder = %s RETURNING term",
            (name, holder),
        )

    async def heartbeat(self, record: InstanceRecord) -> None:
        await self._run(
            "INSERT INTO cp_instances (id, role, started_at, heartbeat_at, report)"
            " VALUES (%s, %s, %s, clock_timestamp(), %s)"
            " ON CONFLICT (id) DO UPDATE SET heartbeat_at = clock_timestamp(), report = EXCLUDED.report"
            " RETURNING id",
            (record.id, record.role, datetime.fromtimestamp(record.started_at, UTC), Jsonb(dict(record.report))),
        )

    async def instances(self, role: str | None = None) -> list[InstanceRecord]:
        where, params = ("WHERE role = %s", (role,)) if role is not None else ("", ())
        rows = await self._run(f"SELECT {_INSTANCE_COLUMNS} FROM cp_instances {where} ORDER BY started_at, id", params)
        return [_record(r) for r in rows]

    async def remove_instance(self, instance_id: str) -> None:
        await self._run("DELETE FROM cp_instances WHERE id = %s RETURNING id", (instance_id,))

    async def prune(self, role: str, older_than: float) -> list[InstanceRecord]:
        rows = await self._run(
            f"DELETE FROM cp_instances WHERE role = %s AND heartbeat_at < clock_timestamp() - make_interval(secs => %s)"
            f" RETURNING {_INSTANCE_COLUMNS}",
            (role, older_than),
        )
        return [_record(r) for r in rows]

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _run(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        async with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self._dsn, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
                    )
                cur = await self._conn.execute(sql.encode(), params)
                return await cur.fetchall()
            except psycopg.Error as e:
                conn, self._conn = self._conn, None
                if conn is not None:
                    await conn.close()
                raise StoreError(f"PostgreSQL: {e}".strip()) from e


def _record(row: tuple[Any, ...]) -> InstanceRecord:
    started: datetime = row[2]
    return InstanceRecord(str(row[0]), str(row[1]), started.timestamp(), dict(row[3]), float(row[4]))
