"""Leader election among the CP instances of one role sharing a store, and leader-only components.

Why a lease with a local deadline, not an advisory lock. A PostgreSQL advisory lock lives as long as
its session. A leader cut off from the database keeps believing it holds the lock (it learns nothing
until a query fails), while the server keeps the session (and the lock) until TCP keepalive kills it,
minutes later, and then hands the lock to another instance at a moment the old leader cannot know: two
leaders, or none for minutes. A lease row with an expiry avoids both:

- The database grants the lease (``Coordination.try_lease``) and decides expiry with its own clock;
  the grant is one atomic statement, so at most one holder has an unexpired lease.
- The holder measures its lease with its own monotonic clock from the moment it *sent* the request:
  it counts itself leader until ``sent + ttl - margin``. The database set the expiry to its time of
  executing the statement plus ``ttl``, which is later than the send. So, clock rates being equal
  (``margin`` absorbs drift and the time to stop), the old leader's deadline passes before any other
  instance can be granted the lease: leader-only work stops first, then someone else starts it.
- A leader partitioned from the database cannot renew; its deadline passes and it steps down within
  ``ttl - margin`` of its last successful renewal, without hearing from the database. A call that
  hangs is abandoned at the deadline (never awaited: psycopg's cancellation may itself wait seconds).
- Every grant to a new holder increments the lease's *term*, a fencing token (``LeaderElector.term``,
  reported in the instance registry). The leader-only writes are also safe against a late write of a
  deposed leader: CA creation is first-writer-wins, ``availableServices`` updates carry the version
  they read, a KDS sync applies full sets in transactions.
- A graceful stop releases the lease, so a successor takes over within one ``retry`` interval.

With the defaults (``ttl`` 2 s, ``margin`` 0.6 s, ``retry`` and renewal every 0.25 s) a killed leader
is replaced within ~2.3 s; a partitioned one stops its leader-only work within 1.4 s of its last
renewal, having had five chances to renew.

``LeaseState`` is the sans-I/O core (grants, refusals and failures in, ``is_leader(now)`` out).
``LeaderElector`` is the component that drives it against a ``Coordination`` with an injected clock;
``wait_leader``/``wait_follower`` and ``on_change`` let other parts follow. ``LeaderOnly`` runs a
component (made fresh by a factory each term) only while this instance leads, stopping it when the
instance is deposed. SQLite and memory stores are single-instance: ``MemoryCoordination`` grants the
lease at once and for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from atoll.cp.components import Component
from atoll.errors import StoreError
from atoll.store.coordination import Coordination

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TTL = 2.0
DEFAULT_MARGIN = 0.6
DEFAULT_RETRY = 0.25


class LeaseState:
    """What this instance knows of its lease: granted until a local deadline, or not held."""

    def __init__(self, ttl: float = DEFAULT_TTL, margin: float = DEFAULT_MARGIN) -> None:
        if not 0 <= margin < ttl:
            raise ValueError(f"margin must be in [0, ttl), got {margin} for ttl {ttl}")
        self.ttl = ttl
        self.margin = margin
        self.valid_until = -math.inf
        self.term: int | None = None

    def granted(self, sent_at: float, term: int) -> None:
        """The store granted (or renewed) the lease for a request sent at ``sent_at``."""
        self.valid_until = max(self.valid_until, sent_at + self.ttl - self.margin)
        self.term = term

    def refused(self) -> None:
        """Another instance holds the lease: whatever this one believed, it does not lead."""
        self.valid_until = -math.inf
        self.term = None

    def is_leader(self, now: float) -> bool:
        return now < self.valid_until

    def remaining(self, now: float) -> float:
        """Seconds left of leadership (0 when not leading)."""
        return max(0.0, self.valid_until - now)


class LeaderElector:
    """Component: keeps trying to hold lease ``lease`` as ``holder`` (module docstring)."""

    def __init__(
        self,
        coordination: Coordination,
        *,
        lease: str,
        holder: str,
        ttl: float = DEFAULT_TTL,
        margin: float = DEFAULT_MARGIN,
        retry: float = DEFAULT_RETRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = lease
        self.holder = holder
        self._coordination = coordination
        self._state = LeaseState(ttl, margin)
        self._retry = retry
        self._renew = min(retry, (ttl - margin) / 3)
        self._clock = clock
        self._leading = asyncio.Event()
        self._following = asyncio.Event()
        self._following.set()
        self._stop = asyncio.Event()
        self._running = False
        self._abandoned: set[asyncio.Task[object]] = set()
        self._listeners: list[Callable[[bool], None]] = []
        self.elections = 0
        """How many times this instance became leader."""

    @property
    def name(self) -> str:
        return "leader"

    @property
    def ready(self) -> bool:
        return self._running

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    @property
    def term(self) -> int | None:
        return self._state.term if self.is_leader else None

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(leading)`` on every change of leadership (on the event loop)."""
        self._listeners.append(listener)

    async def wait_leader(self) -> None:
        await self._leading.wait()

    async def wait_follower(self) -> None:
        await self._following.wait()

    async def start(self) -> None:
        self._running = True
        try:
            while not self._stop.is_set():
                await self._attempt()
                wait = self._renew if self.is_leader else self._retry
                wait = min(wait, self._state.remaining(self._clock())) if self.is_leader else wait
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), max(0.01, wait))
                self._update()
        finally:
            self._running = False
            was_leader = self.is_leader
            self._state.refused()
            self._update()
            if was_leader:
                with contextlib.suppress(StoreError, TimeoutError):
                    await self._bounded(self._coordination.release_lease(self.lease, self.holder), 1.0)
            await self._drain_abandoned()

    async def stop(self) -> None:
        self._stop.set()

    async def _attempt(self) -> None:
        sent = self._clock()
        # a leader must know by its deadline; a follower loses nothing by waiting for a slow store
        limit = self._state.remaining(sent) if self.is_leader else self._state.ttl
        try:
            term = await self._bounded(self._coordination.try_lease(self.lease, self.holder, self._state.ttl), limit)
        except (StoreError, TimeoutError) as e:
            if self.is_leader:
                log.warning("leader lease %s: renewal failed (%s); stepping down unless renewed in time", self.lease, e)
            self._update()
            return
        if term is None:
            self._state.refused()
        else:
            self._state.granted(sent, term)
        self._update()

    def _update(self) -> None:
        leading = self._state.is_leader(self._clock())
        if leading == self._leading.is_set():
            return
        if leading:
            self._following.clear()
            self._leading.set()
            self.elections += 1
            log.info("became leader of %s (term %s) as %s", self.lease, self._state.term, self.holder)
        else:
            self._leading.clear()
            self._following.set()
            log.warning("no longer leader of %s", self.lease)
        for listener in self._listeners:
            listener(leading)

    async def _bounded(self, call: Awaitable[T], limit: float) -> T:
        """``call``'s result within ``limit`` seconds, else ``TimeoutError`` (the call is left to end
        in the background: never waited for, see the module docstring)."""
        task = asyncio.ensure_future(call)
        done, _ = await asyncio.wait({task}, timeout=max(0.01, limit))
        if task in done:
            return task.result()
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)
        raise TimeoutError(f"no answer from the store in {limit:.2f}s")

    async def _drain_abandoned(self) -> None:
        if self._abandoned:
            await asyncio.wait(set(self._abandoned), timeout=2.0)
            for t in self._abandoned:
                if t.done() and not t.cancelled():
                    t.exception()  # retrieved: no "never retrieved" warning


class LeaderOnly:
    """Component: runs ``factory()``'s component while ``elector`` leads, stops it when it does not.

    A new component is made for every term, so it starts from the store's state, not from what a
    previous term left in memory. If the inner component fails, this one fails with it (the supervisor
    then stops the process, as for any component)."""

    def __init__(
        self, name: str, elector: LeaderElector, factory: Callable[[], Component], *, stop_timeout: float = 5.0
    ):
        self._name = name
        self._elector = elector
        self._factory = factory
        self._stop_timeout = stop_timeout
        self._stop = asyncio.Event()
        self._running = False
        self.current: Component | None = None
        self.terms = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def ready(self) -> bool:
        """Ready whether leading or not: a follower serves everything but this part. While leading, not
        ready when the inner component says why not (``not_ready_reason``, e.g. a refused zone token)."""
        return self._running and self.not_ready_reason is None

    @property
    def not_ready_reason(self) -> str | None:
        """The inner component's ``not_ready_reason`` while this instance leads, else ``None``."""
        reason = getattr(self.current, "not_ready_reason", None)
        return reason if isinstance(reason, str) else None

    async def start(self) -> None:
        self._running = True
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                lead = asyncio.ensure_future(self._elector.wait_leader())
                await asyncio.wait({lead, stop}, return_when=asyncio.FIRST_COMPLETED)
                lead.cancel()
                if self._stop.is_set():
                    break
                await self._run_term(stop)
        finally:
            stop.cancel()
            self._running = False

    async def stop(self) -> None:
        self._stop.set()

    async def _run_term(self, stop: asyncio.Future[Any]) -> None:
        inner = self._factory()
        self.current = inner
        self.terms += 1
        log.info("%s: starting (this instance leads)", self._name)
        task = asyncio.create_task(inner.start(), name=f"leader-only-{self._name}")
        follow: asyncio.Future[Any] = asyncio.ensure_future(self._elector.wait_follower())
        try:
            await asyncio.wait([task, follow, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            follow.cancel()
            if not task.done():
                log.info("%s: stopping (%s)", self._name, "shutdown" if self._stop.is_set() else "deposed")
                await inner.stop()
                done, _ = await asyncio.wait({task}, timeout=self._stop_timeout)
                if not done:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self.current = None
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
        if not self._stop.is_set() and self._elector.is_leader:
            raise RuntimeError(f"{self._name} stopped on its own while this instance leads")
