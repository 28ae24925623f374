"""Leases and the instance registry on a real PostgreSQL (``atoll.store.pg_coordination``), and two
leader electors (``atoll.cp.leader``) on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import psycopg
import pytest

from atoll.cp.leader import LeaderElector
from atoll.errors import StoreError
from atoll.store.coordination import InstanceRecord
from atoll.store.pg_coordination import PgCoordination
from atoll.store.postgres import PostgresStore
from tests.helpers import await_until

pytestmark = pytest.mark.postgres


@pytest.fixture
async def dsn(pg_fresh_dsn: str) -> AsyncIterator[str]:
    store = await PostgresStore.open(pg_fresh_dsn)  # migrates: the coordination tables exist
    await store.close()
    yield pg_fresh_dsn


async def test_lease_granted_to_one_holder_with_growing_terms(dsn: str) -> None:
    a, b = PgCoordination(dsn), PgCoordination(dsn)
    try:
        assert await a.try_lease("zone/z", "a", 0.4) == 1
        assert await b.try_lease("zone/z", "b", 0.4) is None
        assert await a.try_lease("zone/z", "a", 0.4) == 1
        await asyncio.sleep(0.5)  # the database's clock decides expiry: let it pass
        assert await b.try_lease("zone/z", "b", 30) == 2
        assert await a.try_lease("zone/z", "a", 30) is None
        await b.release_lease("zone/z", "b")
        assert await a.try_lease("zone/z", "a", 30) == 3
        assert await b.try_lease("global", "b", 30) == 1  # another lease, its own terms
    finally:
        await a.close()
        await b.close()


async def test_concurrent_grabs_grant_exactly_one(dsn: str) -> None:
    coords = [PgCoordination(dsn) for _ in range(8)]
    try:
        got = await asyncio.gather(*(c.try_lease("race", f"i{n}", 30) for n, c in enumerate(coords)))
        assert sorted(t for t in got if t is not None) == [1]
    finally:
        for c in coords:
            await c.close()


async def test_registry_rows_ages_and_prune(dsn: str) -> None:
    c = PgCoordination(dsn)
    try:
        await c.heartbeat(InstanceRecord("z1", "zone/z", 1000.0, {"leader": True, "proxies": 2}))
        await c.heartbeat(InstanceRecord("g1", "global", 999.0, {}))
        rows = await c.instances("zone/z")
        assert [(r.id, r.started_at, dict(r.report)) for r in rows] == [("z1", 1000.0, {"leader": True, "proxies": 2})]
        assert 0 <= rows[0].age < 5
        await asyncio.sleep(0.3)
        await c.heartbeat(InstanceRecord("g1", "global", 999.0, {"n": 1}))
        assert await c.prune("zone/z", older_than=0.2) != []
        assert [r.id for r in await c.instances()] == ["g1"]
        await c.remove_instance("g1")
        assert await c.instances() == []
    finally:
        await c.close()


async def test_a_dropped_connection_is_redialled(dsn: str) -> None:
    c = PgCoordination(dsn)
    try:
        assert await c.try_lease("x", "a", 30) == 1
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(
                b"SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                b" WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(StoreError):
            await c.try_lease("x", "a", 30)
        assert await c.try_lease("x", "a", 30) == 1
    finally:
        await c.close()


async def test_two_electors_hand_over_on_postgres(dsn: str) -> None:
    ca, cb = PgCoordination(dsn), PgCoordination(dsn)
    a = LeaderElector(ca, lease="zone/z", holder="a", ttl=1.5, margin=0.5, retry=0.1)
    b = LeaderElector(cb, lease="zone/z", holder="b", ttl=1.5, margin=0.5, retry=0.1)
    ta = asyncio.create_task(a.start())
    await await_until(lambda: a.is_leader, timeout=15, what="a leads")
    tb = asyncio.create_task(b.start())
    try:
        await await_until(lambda: b.ready, timeout=15)
        await asyncio.sleep(0.5)
        assert a.is_leader and not b.is_leader
        stopped = time.monotonic()
        await a.stop()
        await ta
        await await_until(lambda: b.is_leader, timeout=15, what="b takes over")
        assert time.monotonic() - stopped < 1.5
        assert b.term == 2
    finally:
        await a.stop()
        await b.stop()
        await asyncio.wait_for(asyncio.gather(ta, tb), 15)
        await ca.close()
        await cb.close()
