"""The snapshot cache: the latest ``Snapshot`` per node id, and who to wake when it changes.

``set_snapshot(node_id, snapshot)`` stores the snapshot (checked for consistency first, unless disabled)
and calls that node's watchers synchronously, in the caller's thread. The gRPC pump registers one
watcher per stream that only records the snapshot and sets an ``asyncio.Event``, so call ``set_snapshot``
from the event loop's thread; the streams then wake, diff and write on their own (event driven, no
polling). Several snapshots set while a stream is busy coalesce: the stream sees only the newest.

This is the one narrow interface between the control plane and the ADS streams: ``get``, ``watch``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from atoll.xds.server.snapshot import Snapshot

log = logging.getLogger(__name__)

Watcher = Callable[[Snapshot], None]


class SnapshotCache:
    """Latest snapshot per node id (``<mesh>.<name>``) plus per-node watchers."""

    def __init__(self, *, check_consistency: bool = True) -> None:
        self._check = check_consistency
        self._snapshots: dict[str, Snapshot] = {}
        self._watchers: dict[str, dict[int, Watcher]] = {}
        self._next_watch = 0

    def set_snapshot(self, node_id: str, snapshot: Snapshot) -> None:
        """Store ``snapshot`` for ``node_id`` and wake that node's streams.

        Raises ``InconsistentSnapshot`` (a local generation error) and keeps the previous snapshot when
        the snapshot references resources it lacks and consistency checks are on.
        """
        if self._check:
            snapshot.ensure_consistent()
        if self._snapshots.get(node_id) is snapshot:
            return
        self._snapshots[node_id] = snapshot
        for watcher in list(self._watchers.get(node_id, {}).values()):
            try:
                watcher(snapshot)
            except Exception:  # one broken watcher must not starve the others
                log.exception("xDS snapshot watcher for %s failed", node_id)

    def get(self, node_id: str) -> Snapshot | None:
        return self._snapshots.get(node_id)

    def clear(self, node_id: str) -> None:
        """Forget the node's snapshot (its open streams keep what they have)."""
        self._snapshots.pop(node_id, None)

    def node_ids(self) -> frozenset[str]:
        return frozenset(self._snapshots)

    def watch(self, node_id: str, watcher: Watcher) -> Callable[[], None]:
        """Call ``watcher(snapshot)`` on every new snapshot of ``node_id``; returns the cancel function."""
        self._next_watch += 1
        key = self._next_watch
        self._watchers.setdefault(node_id, {})[key] = watcher

        def cancel() -> None:
            watchers = self._watchers.get(node_id)
            if watchers is not None:
                watchers.pop(key, None)
                if not watchers:
                    del self._watchers[node_id]

        return cancel

    def watcher_count(self, node_id: str) -> int:
        return len(self._watchers.get(node_id, ()))


__all__ = ["SnapshotCache", "Watcher"]
