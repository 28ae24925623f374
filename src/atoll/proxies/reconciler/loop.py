"""The reconciler's loop: follow the store, coalesce bursts of changes, run a pass, publish.

``ProxyReconciler.run()`` opens the store's watch, loads the store (``ReconcileEngine.load``: the first
pass), publishes ``availableServices`` and sets ``ready``. Then, until cancelled: events arriving within
``window`` seconds of the first one are mirrored together, the touched meshes' CAs are refreshed and
their new names given VIPs, one pass runs and ``availableServices`` is published again. When no event
comes before the next certificate's rotation point, the due proxies are regenerated instead.
The watch is closed on exit.
"""

from __future__ import annotations

import asyncio
import time

from atoll.proxies.reconciler.engine import ReconcileEngine
from atoll.store import Subscription


class ProxyReconciler(ReconcileEngine):
    """Store changes -> per-proxy snapshots, event driven (module docstring; the parts: ``engine``)."""

    async def run(self) -> None:
        """Load everything, then follow the store until cancelled."""
        sub = self._store.watch()
        try:
            await self.load()
            await self.publish_available_services()
            self.ready.set()
            while True:
                due_in = self.identities.seconds_until_due()
                try:
                    first = await (anext(sub) if due_in is None else asyncio.wait_for(anext(sub), due_in + 0.01))
                except StopAsyncIteration:
                    return
                except TimeoutError:  # certificates reached their rotation point
                    self.rotate_due()
                    continue
                started = time.perf_counter()
                events = self.apply(first) + await self._coalesce(sub)
                await self.refresh_cas()
                await self.allocate_vips()
                self.flush(events, started)
                await self.publish_available_services()
        finally:
            sub.close()

    async def _coalesce(self, sub: Subscription) -> int:
        """Mirror the events that arrive within ``window`` seconds; how many mattered."""
        n = 0
        deadline = time.monotonic() + self._window
        while True:
            while sub.pending():
                n += self.apply(await anext(sub))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return n
            try:
                n += self.apply(await asyncio.wait_for(anext(sub), remaining))
            except TimeoutError:
                return n
