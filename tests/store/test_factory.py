"""``open_store``: each kind opens its backend; wrong combinations are ConfigErrors naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.errors import ConfigError
from atoll.store import MemoryStore, SqliteStore, open_store


async def test_memory_and_sqlite(tmp_path: Path) -> None:
    m = await open_store("memory")
    assert isinstance(m, MemoryStore)
    await m.close()
    s = await open_store("sqlite", path=tmp_path / "a.db")
    assert isinstance(s, SqliteStore)
    await s.close()
    assert (tmp_path / "a.db").is_file()


@pytest.mark.postgres
async def test_postgres(pg_dsn: str) -> None:
    from atoll.store.postgres import PostgresStore

    s = await open_store("postgres", dsn=pg_dsn)
    assert isinstance(s, PostgresStore)
    await s.close()


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        ("memory", {"path": Path("x.db")}, "memory store takes neither"),
        ("memory", {"dsn": "postgresql://x"}, "memory store takes neither"),
        ("sqlite", {}, "sqlite store needs a path"),
        ("sqlite", {"path": Path("x.db"), "dsn": "postgresql://x"}, "takes a path, not a dsn"),
        ("postgres", {}, "postgres store needs a dsn"),
        ("postgres", {"dsn": "postgresql://x", "path": Path("x.db")}, "takes a dsn, not a path"),
        ("etcd", {}, 'unknown store kind "etcd"; use one of: memory, sqlite, postgres'),
    ],
)
async def test_bad_combinations(kind: str, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        await open_store(kind, **kwargs)  # type: ignore[arg-type]
