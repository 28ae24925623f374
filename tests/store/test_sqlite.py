"""SQLite-only behaviour: a real file that survives reopening, WAL mode, numbered migrations."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from atoll.errors import ConfigError
from atoll.store import EventKind, ListFilter, SqliteStore, _migrations
from atoll.store.sqlite import migrate
from tests.store.data import dataplane, mesh, next_events


async def test_data_and_revision_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "atoll.db"
    s = await SqliteStore.open(path)
    try:
        await s.create(mesh("default", env="dev"))
        dp = await s.update(await s.create(dataplane("dp", team="a")))
        assert await s.revision() == 3
    finally:
        await s.close()
    assert path.is_file()

    s = await SqliteStore.open(path)
    try:
        assert await s.get("Dataplane", "dp", "default") == dp
        assert (await s.get("Mesh", "default")).meta.labels == {"env": "dev"}
        assert await s.revision() == 3
        sub = s.watch()
        await s.delete("Mesh", "default")
        events = await next_events(sub, 2)
        sub.close()
        assert [(e.kind, e.resource.name, e.revision) for e in events] == [
            (EventKind.DELETED, "dp", 4),
            (EventKind.DELETED, "default", 5),
        ]
    finally:
        await s.close()


async def test_open_uses_wal_and_records_migrations_once(tmp_path: Path) -> None:
    path = tmp_path / "atoll.db"
    for _ in range(3):
        s = await SqliteStore.open(path)
        await s.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    shipped = _migrations.load("sqlite")
    assert rows == [(m.version, m.name) for m in shipped]
    assert rows[0] == (1, "init")


def test_migrate_applies_only_pending_migrations_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "migs"
    folder.mkdir()
    (folder / "0001_first.sql").write_text("CREATE TABLE a (x INTEGER);\n-- a comment; with a semicolon\n")
    (folder / "README.txt").write_text("not a migration")
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    try:
        assert migrate(conn, _migrations.from_files(folder.iterdir())) == [1]
        assert migrate(conn, _migrations.from_files(folder.iterdir())) == []
        (folder / "0002_second.sql").write_text(
            "CREATE TABLE b (y TEXT);\nCREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO b VALUES ('x'); END;\n"
        )
        assert migrate(conn, _migrations.from_files(folder.iterdir())) == [2]
        conn.execute("INSERT INTO a VALUES (1)")
        assert conn.execute("SELECT y FROM b").fetchall() == [("x",)]
        assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations")] == [1, 2]
    finally:
        conn.close()


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    folder = tmp_path / "migs"
    folder.mkdir()
    (folder / "0001_ok.sql").write_text("CREATE TABLE a (x INTEGER);")
    (folder / "0002_bad.sql").write_text("CREATE TABLE b (y TEXT);\nTHIS IS NOT SQL;")
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError):
            migrate(conn, _migrations.from_files(folder.iterdir()))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == set()
    finally:
        conn.close()


def test_migration_numbering_is_checked(tmp_path: Path) -> None:
    folder = tmp_path / "migs"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("SELECT 1;")
    (folder / "0003_c.sql").write_text("SELECT 1;")
    with pytest.raises(RuntimeError, match="migration 0002 is missing"):
        _migrations.from_files(folder.iterdir())


async def test_open_on_an_unusable_path_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot open SQLite store"):
        await SqliteStore.open(blocker / "atoll.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match=r"garbage\.db"):
        await SqliteStore.open(garbage)


async def test_two_stores_on_one_file_share_data_and_revision(tmp_path: Path) -> None:
    path = tmp_path / "atoll.db"
    a = await SqliteStore.open(path)
    b = await SqliteStore.open(path)
    try:
        await a.create(mesh("one"))
        await b.create(mesh("two"))
        assert [r.name for r in (await a.list(ListFilter("Mesh"))).items] == ["one", "two"]
        assert await a.revision() == await b.revision() == 2
    finally:
        await a.close()
        await b.close()


async def test_a_locked_file_makes_writes_wait_without_blocking_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "atoll.db"
    s = await SqliteStore.open(path, busy_timeout_ms=10_000)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the file
        write = asyncio.create_task(s.create(mesh("waits")))
        done, _ = await asyncio.wait({write}, timeout=0.3)
        assert not done, "the write should wait for the lock (busy_timeout), and the loop should stay free"
        blocker.execute("COMMIT")
        stored = await asyncio.wait_for(write, 10)
        assert stored.meta.version == 1
    finally:
        blocker.close()
        await s.close()
