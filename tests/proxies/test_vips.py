"""The VIP allocator: stable VIPs kept in a real store, distinct under concurrency, all or nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atoll.proxies.vips import Allocation, Exhausted, VipAllocator, assign, vip_map
from atoll.resources import decode
from atoll.resources.models.vip_allocation import VipEntry
from atoll.store import MemoryStore, SqliteStore, Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def _store_with_mesh(store: Store) -> Store:
    await store.create(decode({"type": "Mesh", "name": "default"}))
    return store


def entries(done: Allocation) -> dict[str, str]:
    return dict(vip_map(done.resource))


async def test_vips_survive_a_restart_over_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "atoll.db"
    store = await _store_with_mesh(await SqliteStore.open(path))
    done = await VipAllocator(store).ensure("default", ["backend.mesh", "web.mesh"], None)
    assert entries(done) == {"backend.mesh": "240.0.0.1", "web.mesh": "240.0.0.2"}
    await store.close()

    store = await SqliteStore.open(path)  # a restarted CP: a new allocator, the same file
    try:
        allocator = VipAllocator(store)
        current = await allocator.read("default")
        assert current is not None
        again = await allocator.ensure("default", ["web.mesh", "backend.mesh"], current)
        assert not again.written
        assert entries(again) == {"backend.mesh": "240.0.0.1", "web.mesh": "240.0.0.2"}
    finally:
        await store.close()


async def test_a_new_name_does_not_move_the_others_and_a_gone_one_keeps_its_vip() -> None:
    store = await _store_with_mesh(MemoryStore())
    allocator = VipAllocator(store)
    first = await allocator.ensure("default", ["b.mesh", "d.mesh"], None)
    second = await allocator.ensure("default", ["a.mesh", "b.mesh", "c.mesh", "d.mesh"], first.resource)
    want = {"a.mesh": "240.0.0.3", "b.mesh": "240.0.0.1", "c.mesh": "240.0.0.4", "d.mesh": "240.0.0.2"}
    assert entries(second) == want
    gone = await allocator.ensure("default", ["a.mesh", "c.mesh", "d.mesh"], second.resource, now=T0)
    assert gone.written and gone.resource is not None
    retired = {e.hostname: e.retired for e in gone.resource.spec.entries}
    assert retired == {"a.mesh": None, "b.mesh": "2026-01-01T00:00:00Z", "c.mesh": None, "d.mesh": None}
    back = await allocator.ensure("default", ["a.mesh", "b.mesh", "c.mesh", "d.mesh"], gone.resource)
    assert entries(back) == entries(second)
    assert back.resource is not None and all(e.retired is None for e in back.resource.spec.entries)
    await store.close()


async def test_two_allocators_racing_on_one_store_give_distinct_vips(tmp_path: Path) -> None:
    store = await _store_with_mesh(await SqliteStore.open(tmp_path / "atoll.db"))
    try:
        one, two = VipAllocator(store), VipAllocator(store)
        names_one = [f"one-{i}.mesh" for i in range(20)]
        names_two = [f"two-{i}.mesh" for i in range(20)]
        # Both start from the same (absent) allocation; the loser re-reads and assigns again.
        await asyncio.gather(one.ensure("default", names_one, None), two.ensure("default", names_two, None))
        stored = await one.read("default")
        assert stored is not None
        assert stored.meta.version == 2  # created by one, then updated by the other after losing the race
        vips = [e.vip for e in stored.spec.entries]
        assert len(vips) == len(set(vips))
        # The loser re-read the winner's allocation and added its names to it: every name is there,
        # and no two share a VIP.
        assert {e.hostname for e in stored.spec.entries} == set(names_one + names_two)
    finally:
        await store.close()


async def test_a_cidr_too_small_allocates_nothing_and_keeps_what_was_given() -> None:
    store = await _store_with_mesh(MemoryStore())
    allocator = VipAllocator(store, "10.9.0.0/30")  # two usable addresses: .1 and .2
    first = await allocator.ensure("default", ["a.mesh"], None)
    assert entries(first) == {"a.mesh": "10.9.0.1"}
    with pytest.raises(Exhausted) as err:
        await allocator.ensure("default", ["a.mesh", "b.mesh", "c.mesh"], first.resource)
    assert str(err.value) == (
        "mesh default: 2 new hostname(s) need a VIP but only 1 address(es) of 10.9.0.0/30 are free;"
        " none was allocated (widen --vip-cidr)"
    )
    stored = await allocator.read("default")
    assert stored is not None and stored.meta.version == first.resource.meta.version  # type: ignore[union-attr]
    assert dict(vip_map(stored)) == {"a.mesh": "10.9.0.1"}
    await store.close()


def test_retired_vips_are_reused_only_when_the_range_runs_out_oldest_first() -> None:
    old = [
        VipEntry(hostname="gone-late.mesh", vip="10.9.0.1", retired=(T0 + timedelta(hours=1)).isoformat()),
        VipEntry(hostname="gone-early.mesh", vip="10.9.0.2", retired=T0.isoformat()),
    ]
    out = assign("default", "10.9.0.0/29", old, ["new.mesh"], T0)  # .3 .. .6 are still free
    assert out is not None and {e.hostname: e.vip for e in out}["new.mesh"] == "10.9.0.3"
    out = assign("default", "10.9.0.0/30", old, ["new.mesh"], T0)  # nothing free: the oldest retired
    assert out is not None
    assert {e.hostname: e.vip for e in out} == {"gone-late.mesh": "10.9.0.1", "new.mesh": "10.9.0.2"}


def test_a_vip_outside_a_changed_cidr_is_allocated_again() -> None:
    out = assign("default", "10.8.0.0/24", [VipEntry(hostname="a.mesh", vip="240.0.0.1")], ["a.mesh"], T0)
    assert out is not None and [(e.hostname, e.vip) for e in out] == [("a.mesh", "10.8.0.1")]


def test_nothing_to_write_when_nothing_changed() -> None:
    current = [VipEntry(hostname="a.mesh", vip="240.0.0.1")]
    assert assign("default", "240.0.0.0/4", current, ["a.mesh"], T0) is None


def test_an_allocation_giving_one_vip_twice_is_refused() -> None:
    with pytest.raises(Exception, match="given to two hostnames"):
        decode(
            {
                "type": "VipAllocation",
                "mesh": "default",
                "name": "vips",
                "cidr": "240.0.0.0/4",
                "entries": [{"hostname": "a.mesh", "vip": "240.0.0.1"}, {"hostname": "b.mesh", "vip": "240.0.0.1"}],
            }
        )
