"""Resource storage: one protocol (``Store``), several backends, one contract test suite."""

from atoll.store.memory import MemoryStore
from atoll.store.protocol import ChangeEvent, EventKind, ListFilter, Page, Store, Subscription

__all__ = ["ChangeEvent", "EventKind", "ListFilter", "MemoryStore", "Page", "Store", "Subscription"]
