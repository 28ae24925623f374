"""PostgreSQL-only behaviour: several store instances on one database (HA control planes)."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from atoll.errors import Conflict, StoreError
from atoll.resources import Resource
from atoll.store import EventKind, ListFilter
from atoll.store.postgres import PostgresStore
from tests.helpers import await_until
from tests.store.data import dataplane, mesh, next_events, summary

pytestmark = pytest.mark.postgres


async def test_a_second_instance_watch_sees_the_first_instance_writes(pg_dsn: str) -> None:
    a = await PostgresStore.open(pg_dsn)
    b = await PostgresStore.open(pg_dsn)
    try:
        sub_a, sub_b = a.watch(), b.watch()
        await a.create(mesh("default"))
        d = await b.create(dataplane("dp"))
        await a.update(d)
        await b.delete("Mesh", "default")
        want = [
            ("created", "Mesh", "default", 1),
            ("created", "Dataplane", "dp", 1),
            ("updated", "Dataplane", "dp", 2),
            ("deleted", "Dataplane", "dp", 2),
            ("deleted", "Mesh", "default", 1),
        ]
        got_a, got_b = await next_events(sub_a, 5), await next_events(sub_b, 5)
        assert summary(got_a) == summary(got_b) == want
        assert [e.revision for e in got_a] == [e.revision for e in got_b] == [1, 2, 3, 4, 5]
        sub_a.close()
        sub_b.close()
    finally:
        await a.close()
        await b.close()


async def test_concurrent_updates_across_instances_one_wins(pg_dsn: str) -> None:
    stores = [await PostgresStore.open(pg_dsn) for _ in range(3)]
    try:
        v1 = await stores[0].create(dataplane("dp"))
        tries = [stores[i % 3].update(v1.with_meta(labels={"by": str(i)})) for i in range(9)]
        results: list[Any] = await asyncio.gather(*tries, return_exceptions=True)
        winners = [r for r in results if isinstance(r, Resource)]
        assert len(winners) == 1, results
        assert all(isinstance(r, Conflict) for r in results if not isinstance(r, Resource))
        for s in stores:
            assert (await s.get("Dataplane", "dp", "default")).meta.labels == winners[0].meta.labels
    finally:
        for s in stores:
            await s.close()


async def test_instances_migrate_once_and_data_and_revision_persist(pg_fresh_dsn: str) -> None:
    # Two instances start together on a database never migrated: the advisory lock makes one migrate.
    a, b = await asyncio.gather(PostgresStore.open(pg_fresh_dsn), PostgresStore.open(pg_fresh_dsn))
    try:
        await a.create(mesh("default"))
        await b.create(dataplane("dp"))
    finally:
        await a.close()
        await b.close()
    c = await PostgresStore.open(pg_fresh_dsn)
    try:
        assert await c.revision() == 2
        assert (await c.list(ListFilter("Dataplane"))).total == 1
        sub = c.watch()
        await c.create(mesh("next"))
        (ev,) = await next_events(sub, 1)
        assert ev.revision == 3 and ev.kind is EventKind.CREATED
        sub.close()
    finally:
        await c.close()
    with psycopg.connect(pg_fresh_dsn) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(1, "init"), (2, "coordination")]  # each shipped migration applied exactly once


async def test_listener_reconnects_and_catches_up(pg_dsn: str) -> None:
    a = await PostgresStore.open(pg_dsn)
    b = await PostgresStore.open(pg_dsn)
    try:
        sub = b.watch()
        # Cut every LISTEN connection (as a server restart or a network cut would), then write
        # while b's listener is away: b must publish the write once it is back.
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()"
            )
        await a.create(mesh("while-away"))
        (ev,) = await next_events(sub, 1, within=15)
        assert ev.resource.name == "while-away"

        async def listening_again() -> bool:
            with psycopg.connect(pg_dsn, autocommit=True) as admin:
                row = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
                ).fetchone()
            return row is not None and row[0] == 2

        await await_until(listening_again, what="both listeners reconnected")
        await a.create(mesh("after"))
        (ev,) = await next_events(sub, 1)
        assert ev.resource.name == "after"
        sub.close()
    finally:
        await a.close()
        await b.close()


async def test_unreachable_server_is_a_store_error(pg_server: Any) -> None:
    dsn = f"host=127.0.0.1 port={pg_server.port} user=postgres dbname=does_not_exist connect_timeout=2"
    with pytest.raises(StoreError, match="does_not_exist"):
        await PostgresStore.open(dsn)
