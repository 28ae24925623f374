"""``open_store``: pick and open a backend from configuration values (``--store``, ``--store-path``,
``--store-dsn``). Wrong combinations are ``ConfigError``s that name the option to fix. The
PostgreSQL driver is imported only when that backend is chosen.
"""

from __future__ import annotations

from pathlib import Path

from atoll.errors import ConfigError
from atoll.store.memory import MemoryStore
from atoll.store.protocol import Store

KINDS = ("memory", "sqlite", "postgres")


async def open_store(kind: str, *, path: Path | str | None = None, dsn: str | None = None) -> Store:
    """Open the store of ``kind`` (``memory``, ``sqlite`` with ``path``, ``postgres`` with ``dsn``)."""
    if kind == "memory":
        if path is not None or dsn is not None:
            raise ConfigError("the memory store takes neither a path nor a dsn")
        return MemoryStore()
    if kind == "sqlite":
        if dsn is not None:
            raise ConfigError("the sqlite store takes a path, not a dsn (a dsn is for --store postgres)")
        if path is None or str(path) == "":
            raise ConfigError("the sqlite store needs a path: the database file, e.g. <data dir>/atoll.db")
        from atoll.store.sqlite import SqliteStore

        return await SqliteStore.open(Path(path))
    if kind == "postgres":
        if path is not None:
            raise ConfigError("the postgres store takes a dsn, not a path (a path is for --store sqlite)")
        if not dsn:
            raise ConfigError("the postgres store needs a dsn, e.g. postgresql://user@host:5432/atoll")
        from atoll.store.postgres import PostgresStore

        return await PostgresStore.open(dsn)
    raise ConfigError(f'unknown store kind "{kind}"; use one of: {", ".join(KINDS)}')
