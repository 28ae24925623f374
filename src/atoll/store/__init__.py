"""Resource storage: one protocol (``Store``), several backends, one contract test suite.

``open_store(kind, path=..., dsn=...)`` opens a backend by name. ``MemoryStore`` and ``SqliteStore``
are exported here; ``atoll.store.postgres.PostgresStore`` is imported on demand (it needs psycopg).
``list_all(store, filter)`` reads every match, a page at a time.
"""

from atoll.store.factory import KINDS, open_store
from atoll.store.memory import MemoryStore
from atoll.store.protocol import (
    ChangeEvent,
    Delete,
    EventKind,
    ListFilter,
    Op,
    Page,
    Put,
    Store,
    Subscription,
    list_all,
)
from atoll.store.sqlite import SqliteStore

__all__ = [
    "KINDS",
    "ChangeEvent",
    "Delete",
    "EventKind",
    "ListFilter",
    "MemoryStore",
    "Op",
    "Page",
    "Put",
    "SqliteStore",
    "Store",
    "Subscription",
    "list_all",
    "open_store",
]
