"""The GUI's event stream: one store watch and one poll per CP, fanned out to at most ``max_clients``.

``LiveEvents`` is a control-plane component. While it runs it follows the store's ``watch()`` (every
committed change: resources, and at global the DataplaneInsights zones sync up) and polls ``pulse``
every ``interval`` seconds: a cheap fingerprint of what is not in the store (the proxy inventory's
revision on a zone CP, the zones' connection state at global), only while some client follows (the
first read after a pause counts as a change, so nothing that changed meanwhile is missed). Either one
marks every subscribed client with what changed (store type names, or ``live``). A browser reloads its
page's data when its stream connects and on every message, so it misses no change made after it loaded.

Bounded: a client holds a *set* of changed names (at most one entry per resource type, whatever the
rate of changes) and one wake-up event, so a slow browser costs a few bytes, never a growing queue;
``subscribe`` answers ``None`` past ``max_clients`` (the route answers 503). ``next_batch`` waits at
most ``heartbeat`` seconds (the route then sends a comment line, so proxies and browsers keep the
connection) and gathers what changed for ``settle`` seconds after the first change, so a burst of
writes is one message. ``stop()`` closes every client: their streams end at once, so the API server's
graceful shutdown is not held up by open event streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable

from atoll.store.protocol import Store, Subscription

log = logging.getLogger(__name__)

Pulse = Callable[[], Awaitable[Hashable]]
"""A fingerprint of live state the store does not hold; a new value means "changed"."""

LIVE = "live"


class Client:
    """One subscriber: what changed since its last batch, and whether the stream is closed."""

    def __init__(self) -> None:
        self.changed: set[str] = set()
        self.closed = False
        self._wake = asyncio.Event()

    def mark(self, what: str) -> None:
        self.changed.add(what)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next_batch(self, heartbeat: float, settle: float) -> set[str] | None:
        """The names changed since the last batch; an empty set after ``heartbeat`` seconds without
        a change; ``None`` once closed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), heartbeat)
        if self.changed and not self.closed:
            await asyncio.sleep(settle)  # let a burst of writes land in one message
        self._wake.clear()
        if self.closed:
            return None
        batch, self.changed = self.changed, set()
        return batch


class LiveEvents:
    """Component: the store watch and the pulse, fanned out to the subscribed clients."""

    def __init__(
        self, store: Store, pulse: Pulse | None = None, *, interval: float = 0.5, max_clients: int = 32
    ) -> None:
        self._store = store
        self._pulse = pulse
        self._interval = interval
        self.max_clients = max_clients
        self._clients: set[Client] = set()
        self._stop = asyncio.Event()
        self._running = False

    @property
    def name(self) -> str:
        return "gui-events"

    @property
    def ready(self) -> bool:
        return self._running

    @property
    def clients(self) -> int:
        return len(self._clients)

    def subscribe(self) -> Client | None:
        """A new client, or ``None`` when ``max_clients`` are subscribed (or the component stopped)."""
        if self._stop.is_set() or len(self._clients) >= self.max_clients:
            return None
        c = Client()
        self._clients.add(c)
        return c

    def unsubscribe(self, c: Client) -> None:
        self._clients.discard(c)
        c.close()

    def notify(self, what: str) -> None:
        for c in self._clients:
            c.mark(what)

    async def start(self) -> None:
        if self._stop.is_set():
            return
        sub = self._store.watch()
        self._running = True
        try:
            async with asyncio.TaskGroup() as tg:
                watcher = tg.create_task(self._follow(sub))
                poller = tg.create_task(self._poll())
                await self._stop.wait()
                watcher.cancel()
                poller.cancel()
        finally:
            self._running = False
            sub.close()
            for c in list(self._clients):
                self.unsubscribe(c)

    async def stop(self) -> None:
        self._stop.set()
        for c in list(self._clients):
            self.unsubscribe(c)

    async def _follow(self, sub: Subscription) -> None:
        async for ev in sub:
            if self._clients:
                self.notify(ev.resource.type)

    async def _poll(self) -> None:
        if self._pulse is None:
            return
        unread = object()
        last: Hashable = unread
        while True:
            if not self._clients:  # nobody follows: read nothing
                last = unread
                await asyncio.sleep(self._interval)
                continue
            try:
                now = await self._pulse()
            except Exception:  # a failing read must not end the stream of store changes
                log.exception("gui: reading live state failed")
                now = last
            if now != last:  # the first read after nobody followed counts as a change: whatever
                self.notify(LIVE)  # changed between a page's load and this read is not lost
            last = now
            await asyncio.sleep(self._interval)
