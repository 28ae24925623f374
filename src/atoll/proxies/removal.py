"""Removing the resources of proxies that went away: a Dataplane (ZoneIngress, ZoneEgress) registered by
a proxy is deleted ``grace`` seconds after its last stream closed, unless it reconnected by then.

``RemovalTimers.schedule(nid)`` (re)starts a node's timer, ``cancel(nid)`` stops it (the proxy is back).
When a timer fires the resource is deleted if it is still there, still registered by a proxy (label
``atoll.io/managed: dp`` — ones written with ``atoll apply`` stay) and its proxy is still not connected;
a resource changed meanwhile (version conflict) is left alone. ``start()`` gives every registered
resource of this zone whose proxy is not connected the same grace (a CP restarted under its proxies);
``close()`` stops every timer and pending removal.

With several CP instances on one store (HA), a proxy may be connected to another instance:
``connected_elsewhere(nid)`` (set by the wiring from the instance registry, ``atoll.cp.instances``)
says so, and such a proxy's resource is left alone too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from atoll.errors import Conflict, NotFound
from atoll.proxies.inventory import Inventory
from atoll.proxies.reconciler.mirror import read_all
from atoll.resources.proxy_id import NodeId, ProxyType
from atoll.store import ListFilter, Store

log = logging.getLogger(__name__)

MANAGED_LABEL = "atoll.io/managed"
"""``dp`` on the resources a proxy registered itself (``DataplaneLifecycle``)."""


class RemovalTimers:
    """Deletes the resources of proxies that stayed disconnected (module docstring)."""

    def __init__(self, store: Store, inventory: Inventory, *, grace: float, zone: str) -> None:
        self._store = store
        self._inventory = inventory
        self._grace = grace
        self._zone = zone
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.connected_elsewhere: Callable[[str], bool] = lambda nid: False
        """True if another CP instance sharing the store serves ``nid`` (HA; see the module docstring)."""

    async def start(self) -> None:
        """Give every registered proxy resource whose proxy is not connected ``grace`` seconds to reconnect."""
        for proxy_type in ProxyType:
            which = ListFilter(type=proxy_type.resource_type, labels={MANAGED_LABEL: "dp"})
            for r in await read_all(self._store, which):
                if not proxy_type.in_mesh and r.spec.zone not in (None, "", self._zone):
                    continue
                nid = str(NodeId.of(r.type, r.mesh, r.name))
                if not self._inventory.connected(nid):
                    self.schedule(nid)

    async def close(self) -> None:
        for h in self._timers.values():
            h.cancel()
        self._timers.clear()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def schedule(self, nid: str) -> None:
        self.cancel(nid)
        loop = asyncio.get_running_loop()
        self._timers[nid] = loop.call_later(self._grace, self._spawn, nid)

    def cancel(self, nid: str) -> None:
        h = self._timers.pop(nid, None)
        if h is not None:
            h.cancel()

    def _spawn(self, nid: str) -> None:
        self._timers.pop(nid, None)
        task = asyncio.get_running_loop().create_task(self._remove(nid), name=f"remove-{nid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _remove(self, nid: str) -> None:
        if self._inventory.connected(nid) or self.connected_elsewhere(nid):
            return
        node = NodeId.parse(nid)
        type_name, mesh, name = node.type.resource_type, node.mesh, node.name
        try:
            current = await self._store.get(type_name, name, mesh)
            if current.meta.labels.get(MANAGED_LABEL) != "dp":
                return
            await self._store.delete(type_name, name, mesh, version=current.meta.version)
            log.info("removed %s %s: its proxy stayed disconnected for %.1fs", type_name, nid, self._grace)
        except (NotFound, Conflict):
            return
        except Exception:
            log.exception("could not remove Dataplane %s", nid)
        finally:
            self._inventory.forget(nid) if not self._inventory.connected(nid) else None
