"""Store fixtures: a throw-away PostgreSQL server for the session, a fresh store per test.

The server is initialised in a temp dir owned by ``postgres`` (``initdb`` refuses root), listens on
127.0.0.1 at a free port, and is stopped with ``pg_ctl -m fast stop`` in the finaliser, even when
the session fails. Durability settings are off: it is a test server. Each postgres test gets either
the session's database emptied (``pg_dsn``: truncated, fast) or a brand-new database
(``pg_fresh_dsn``: for migration tests).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from atoll.store import MemoryStore, SqliteStore, Store
from tests.helpers import free_port


def _pg_bin() -> Path:
    """``$ATOLL_PG_BIN``, else the newest ``/usr/lib/postgresql/<version>/bin`` (Debian's layout)."""
    if os.environ.get("ATOLL_PG_BIN"):
        return Path(os.environ["ATOLL_PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
_db_numbers = itertools.count(1)


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    data: Path | None = None  # the cluster's data directory (for ``restart``)

    def dsn(self, dbname: str) -> str:
        return f"host={self.host} port={self.port} user=postgres dbname={dbname} connect_timeout=5"

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is dropped; the server is back when it returns."""
        assert self.data is not None
        r = _as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.data.parent / "log"),
            "-m",
            "fast",
            "-w",
            "restart",
            cwd=self.data.parent,
        )
        assert r.returncode == 0, f"pg_ctl restart failed:\n{r.stdout}\n{r.stderr}"


def _as_postgres(*cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *cmd], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(reason=f"PostgreSQL binaries not found in {PG_BIN} (apt-get install -y postgresql)")
    base = Path(tempfile.mkdtemp(prefix="atoll-pg-"))
    data = base / "data"
    started = False
    try:
        if os.geteuid() == 0:
            shutil.chown(base, "postgres", "postgres")
        r = _as_postgres(
            str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", cwd=base
        )
        assert r.returncode == 0, f"initdb failed:\n{r.stdout}\n{r.stderr}"
        port = free_port()
        opts = (
            f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        r = _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start", cwd=base
        )
        started = True
        if r.returncode != 0:
            log = (base / "log").read_text() if (base / "log").exists() else ""
            raise AssertionError(f"pg_ctl start failed:\n{r.stdout}\n{r.stderr}\n{log}")
        yield PgServer("127.0.0.1", port, data)
    finally:
        if started:
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", cwd=base)
        shutil.rmtree(base, ignore_errors=True)


def _admin(server: PgServer, sql: str) -> None:
    import psycopg

    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.encode())


@pytest.fixture(scope="session")
def pg_shared_dsn(pg_server: PgServer) -> str:
    """One database for the session, migrated by the first store opened on it."""
    name = f"atoll_test_{os.getpid()}_shared"
    _admin(pg_server, f"CREATE DATABASE {name}")
    return pg_server.dsn(name)


@pytest.fixture
def pg_dsn(pg_shared_dsn: str) -> str:
    """The session's database, emptied: no resources, no events, revision 0 (fast: no CREATE DATABASE)."""
    import psycopg

    with psycopg.connect(pg_shared_dsn, autocommit=True) as conn:
        conn.execute(
            b"DO $$ BEGIN IF to_regclass('store_revision') IS NOT NULL THEN"
            b" TRUNCATE resources, store_events; UPDATE store_revision SET revision = 0; END IF; END $$"
        )
    return pg_shared_dsn


@pytest.fixture
def pg_fresh_dsn(pg_server: PgServer) -> Iterator[str]:
    """A new database that no store has touched yet (dropped afterwards)."""
    name = f"atoll_test_{os.getpid()}_{next(_db_numbers)}"
    _admin(pg_server, f"CREATE DATABASE {name}")
    try:
        yield pg_server.dsn(name)
    finally:
        _admin(pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh, empty store of each backend; closed after the test."""
    s: Store
    if backend == "memory":
        s = MemoryStore()
    elif backend == "sqlite":
        s = await SqliteStore.open(tmp_path / "store" / "atoll.db")
    else:
        from atoll.store.postgres import PostgresStore

        dsn = request.getfixturevalue("pg_dsn")
        s = await PostgresStore.open(dsn)
    try:
        yield s
    finally:
        await s.close()
