"""A PostgreSQL store across a server restart: the next operations get fresh connections (the pool
checks them), and the change listener reconnects and publishes what was written meanwhile."""

from __future__ import annotations

import pytest

from atoll.store.postgres import PostgresStore
from tests.helpers import await_until
from tests.store.conftest import PgServer
from tests.store.data import mesh

pytestmark = pytest.mark.postgres


async def test_operations_and_events_after_a_server_restart(pg_server: PgServer, pg_fresh_dsn: str) -> None:
    store = await PostgresStore.open(pg_fresh_dsn)
    sub = store.watch()
    try:
        await store.create(mesh("before"))
        pg_server.restart()
        await store.create(mesh("after"))  # no error: the dropped connection is not lent again
        assert (await store.get("Mesh", "after")).name == "after"
        seen: list[str] = []

        async def both() -> bool:
            while sub.pending():
                seen.append((await anext(sub)).resource.name)
            return {"before", "after"} <= set(seen)

        await await_until(both, timeout=30, what="events of both writes")
    finally:
        sub.close()
        await store.close()
