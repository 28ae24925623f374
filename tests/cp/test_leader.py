"""Leader election (``atoll.cp.leader``): the sans-I/O lease state, the elector against the in-memory
coordination (two instances, a stop, a partition that hangs every call), and ``LeaderOnly``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from atoll.cp.leader import LeaderElector, LeaderOnly, LeaseState
from atoll.store.coordination import InstanceRecord, MemoryCoordination
from tests.helpers import await_until

# -- LeaseState: pure --------------------------------------------------------------------------------


def test_lease_counts_from_the_send_time_minus_the_margin() -> None:
    s = LeaseState(ttl=3.0, margin=1.0)
    assert not s.is_leader(0.0)
    s.granted(sent_at=10.0, term=4)
    assert s.is_leader(11.99) and not s.is_leader(12.0)
    assert s.term == 4 and s.remaining(11.5) == pytest.approx(0.5)
    s.granted(sent_at=9.0, term=4)  # a late answer to an older request never shortens the lease
    assert s.is_leader(11.99)
    s.refused()
    assert not s.is_leader(10.5) and s.term is None and s.remaining(10.5) == 0.0


def test_lease_margin_must_be_below_ttl() -> None:
    with pytest.raises(ValueError, match="margin"):
        LeaseState(ttl=1.0, margin=1.0)


# -- MemoryCoordination: the lease rules every backend follows ------------------------------------------


async def test_memory_lease_terms_and_expiry() -> None:
    now = [0.0]
    c = MemoryCoordination(clock=lambda: now[0])
    assert await c.try_lease("zone/a", "i1", 3.0) == 1
    assert await c.try_lease("zone/a", "i2", 3.0) is None
    now[0] = 2.0
    assert await c.try_lease("zone/a", "i1", 3.0) == 1  # renewal keeps the term
    now[0] = 4.5
    assert await c.try_lease("zone/a", "i2", 3.0) is None  # renewed at 2: valid until 5
    now[0] = 5.5
    assert await c.try_lease("zone/a", "i2", 3.0) == 2  # expired: a new holder, a new term
    await c.release_lease("zone/a", "i1")  # not the holder: no effect
    assert await c.try_lease("zone/a", "i1", 3.0) is None
    await c.release_lease("zone/a", "i2")
    assert await c.try_lease("zone/a", "i1", 3.0) == 3


async def test_memory_registry_ages_and_prunes() -> None:
    now = [100.0]
    c = MemoryCoordination(clock=lambda: now[0])
    await c.heartbeat(InstanceRecord("a", "zone", 1.0, {"leader": True}))
    await c.heartbeat(InstanceRecord("b", "zone", 2.0))
    await c.heartbeat(InstanceRecord("g", "global", 0.5))
    now[0] = 105.0
    await c.heartbeat(InstanceRecord("b", "zone", 2.0))
    rows = await c.instances("zone")
    assert [(r.id, r.age) for r in rows] == [("a", 5.0), ("b", 0.0)]
    assert rows[0].report == {"leader": True}
    gone = await c.prune("zone", older_than=3.0)
    assert [r.id for r in gone] == ["a"]
    assert [r.id for r in await c.instances()] == ["g", "b"]


# -- the elector --------------------------------------------------------------------------------------


class Partitionable:
    """A coordination whose calls hang forever once ``cut`` is set (the database partitioned away)."""

    def __init__(self, inner: MemoryCoordination) -> None:
        self.inner = inner
        self.cut = False

    async def _gate(self) -> None:
        if self.cut:
            await asyncio.Event().wait()

    async def try_lease(self, name: str, holder: str, ttl: float) -> int | None:
        await self._gate()
        return await self.inner.try_lease(name, holder, ttl)

    async def release_lease(self, name: str, holder: str) -> None:
        await self._gate()
        await self.inner.release_lease(name, holder)

    def __getattr__(self, item: str) -> Any:
        return getattr(self.inner, item)


FAST = {"ttl": 0.6, "margin": 0.2, "retry": 0.05}


class Timeline:
    """Who led when, recorded from ``on_change``: to check that two never lead at once."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, bool]] = []

    def follow(self, e: LeaderElector) -> None:
        e.on_change(lambda leading: self.events.append((time.monotonic(), e.holder, leading)))

    def overlaps(self) -> int:
        leading: set[str] = set()
        worst = 0
        for _, who, on in sorted(self.events):
            (leading.add if on else leading.discard)(who)
            worst = max(worst, len(leading))
        return worst


async def test_one_leader_and_a_fast_handover_on_stop() -> None:
    coord = MemoryCoordination()
    a = LeaderElector(coord, lease="zone/z", holder="a", **FAST)
    b = LeaderElector(coord, lease="zone/z", holder="b", **FAST)
    timeline = Timeline()
    timeline.follow(a)
    timeline.follow(b)
    ta = asyncio.create_task(a.start())
    await await_until(lambda: a.is_leader, timeout=10, what="a leads")
    tb = asyncio.create_task(b.start())
    try:
        await await_until(lambda: b.ready, timeout=10, what="b running")
        await asyncio.sleep(0.3)  # several retries of b: it must stay a follower
        assert a.is_leader and not b.is_leader and a.term == 1
        stopped = time.monotonic()
        await a.stop()
        await ta
        await await_until(lambda: b.is_leader, timeout=10, what="b takes over")
        assert time.monotonic() - stopped < 0.5, "a released the lease: b needs one retry, not a ttl"
        assert b.term == 2
        assert timeline.overlaps() == 1
    finally:
        await a.stop()
        await b.stop()
        await asyncio.gather(ta, tb)


async def test_partitioned_leader_steps_down_before_another_is_granted() -> None:
    coord = MemoryCoordination()
    cut_off = Partitionable(coord)
    a = LeaderElector(cut_off, lease="zone/z", holder="a", **FAST)  # type: ignore[arg-type]
    b = LeaderElector(coord, lease="zone/z", holder="b", **FAST)
    timeline = Timeline()
    timeline.follow(a)
    timeline.follow(b)
    ta = asyncio.create_task(a.start())
    await await_until(lambda: a.is_leader, timeout=10, what="a leads")
    tb = asyncio.create_task(b.start())
    try:
        cut_off.cut = True
        cut = time.monotonic()
        await await_until(lambda: not a.is_leader, timeout=10, what="a steps down")
        assert time.monotonic() - cut <= FAST["ttl"] - FAST["margin"] + 0.2
        await await_until(lambda: b.is_leader, timeout=10, what="b takes over")
        assert timeline.overlaps() == 1, timeline.events
        down = next(t for t, who, on in timeline.events if who == "a" and not on)
        up = next(t for t, who, on in timeline.events if who == "b" and on)
        assert up > down
    finally:
        await a.stop()
        await b.stop()
        await asyncio.wait_for(asyncio.gather(ta, tb), 10)


class Counter:
    """A component that counts its runs and can be told to fail."""

    made: list[Counter] = []

    def __init__(self) -> None:
        self.running = False
        self.stopped = asyncio.Event()
        Counter.made.append(self)

    @property
    def name(self) -> str:
        return "counter"

    @property
    def ready(self) -> bool:
        return self.running

    async def start(self) -> None:
        self.running = True
        try:
            await self.stopped.wait()
        finally:
            self.running = False

    async def stop(self) -> None:
        self.stopped.set()


async def test_leader_only_runs_a_fresh_component_each_term() -> None:
    Counter.made = []
    coord = Partitionable(MemoryCoordination())
    e = LeaderElector(coord, lease="global", holder="a", **FAST)  # type: ignore[arg-type]
    only = LeaderOnly("counter", e, Counter)
    te = asyncio.create_task(e.start())
    to = asyncio.create_task(only.start())
    try:
        await await_until(lambda: len(Counter.made) == 1 and Counter.made[0].running, timeout=10, what="term 1")
        assert only.ready
        coord.cut = True
        await await_until(lambda: not Counter.made[0].running, timeout=10, what="stopped when deposed")
        assert only.ready and not e.is_leader
        coord.cut = False
        await await_until(lambda: len(Counter.made) == 2 and Counter.made[1].running, timeout=10, what="term 2")
        assert only.terms == 2
    finally:
        await only.stop()
        await e.stop()
        await asyncio.wait_for(asyncio.gather(to, te), 10)
    assert not Counter.made[1].running
