"""The store contract: every backend (memory, sqlite, postgres) passes these same tests.

Each test gets a fresh, empty store from the ``store`` fixture (``conftest.py``). Test data are real
resource types (Mesh, Dataplane) built from Universal documents.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from atoll.errors import AlreadyExists, Conflict, InvalidInput, NotFound, StoreError
from atoll.resources import Resource
from atoll.store import EventKind, ListFilter, Store, list_all
from tests.store.data import dataplane, mesh, next_events, summary

# -- create / get ----------------------------------------------------------------------------------


async def test_create_then_get_returns_the_stored_resource(store: Store) -> None:
    await store.create(mesh("default"))
    dp = dataplane("web-1", service="web", team="a")
    created = await store.create(dp)
    assert created.meta.version == 1
    assert created.meta.creation_time is not None
    assert created.meta.creation_time == created.meta.modification_time
    assert created.spec == dp.spec and created.meta.labels == {"team": "a"}

    got = await store.get("Dataplane", "web-1", "default")
    assert got == created
    assert got.spec.networking.inbound[0].service == "web"
    assert (await store.get("Mesh", "default")).meta.version == 1


async def test_create_twice_is_already_exists(store: Store) -> None:
    await store.create(mesh("default"))
    with pytest.raises(AlreadyExists, match="Mesh default"):
        await store.create(mesh("default"))
    # same name in another mesh is another resource
    await store.create(dataplane("dp", mesh="default"))
    await store.create(dataplane("dp", mesh="other"))
    with pytest.raises(AlreadyExists):
        await store.create(dataplane("dp", mesh="other"))


async def test_get_missing_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="Dataplane nope in mesh default"):
        await store.get("Dataplane", "nope", "default")
    await store.create(dataplane("dp", mesh="default"))
    with pytest.raises(NotFound):
        await store.get("Dataplane", "dp", "other")


# -- update ----------------------------------------------------------------------------------------


async def test_update_bumps_version_and_keeps_creation_time(store: Store) -> None:
    v1 = await store.create(dataplane("dp", port=8080, team="a"))
    changed = dataplane("dp", port=9090, team="b").with_meta(version=v1.meta.version)
    v2 = await store.update(changed)
    assert v2.meta.version == 2
    assert v2.meta.creation_time == v1.meta.creation_time
    assert v2.meta.modification_time is not None and v1.meta.modification_time is not None
    assert v2.meta.modification_time >= v1.meta.modification_time
    got = await store.get("Dataplane", "dp", "default")
    assert got == v2
    assert got.spec.networking.inbound[0].port == 9090
    assert got.meta.labels == {"team": "b"}
    v3 = await store.update(got)
    assert v3.meta.version == 3


async def test_update_with_stale_version_is_conflict(store: Store) -> None:
    v1 = await store.create(dataplane("dp"))
    await store.update(v1)
    with pytest.raises(Conflict, match="version 1 is stale, stored version is 2"):
        await store.update(v1)
    with pytest.raises(Conflict):
        await store.update(dataplane("dp"))  # version 0: never stored
    assert (await store.get("Dataplane", "dp", "default")).meta.version == 2


async def test_update_missing_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.update(dataplane("dp").with_meta(version=1))


# -- delete ----------------------------------------------------------------------------------------


async def test_delete_removes_and_checks_version(store: Store) -> None:
    v1 = await store.create(dataplane("dp"))
    v2 = await store.update(v1)
    with pytest.raises(Conflict):
        await store.delete("Dataplane", "dp", "default", version=v1.meta.version)
    assert (await store.get("Dataplane", "dp", "default")) == v2  # a refused delete changes nothing
    await store.delete("Dataplane", "dp", "default", version=v2.meta.version)
    with pytest.raises(NotFound):
        await store.get("Dataplane", "dp", "default")
    with pytest.raises(NotFound):
        await store.delete("Dataplane", "dp", "default")


async def test_delete_without_version_deletes_whatever_is_stored(store: Store) -> None:
    r = await store.update(await store.create(mesh("m")))
    assert r.meta.version == 2
    await store.delete("Mesh", "m")
    await store.create(mesh("n"))
    await store.delete("Mesh", "n", version=0)
    assert (await store.list(ListFilter("Mesh"))).total == 0


async def test_deleting_a_mesh_deletes_everything_in_it(store: Store) -> None:
    await store.create(mesh("a"))
    await store.create(mesh("b"))
    for i in range(3):
        await store.create(dataplane(f"dp-{i}", mesh="a"))
    await store.create(dataplane("dp-0", mesh="b"))
    sub = store.watch()
    try:
        await store.delete("Mesh", "a")
        events = await next_events(sub, 4)
    finally:
        sub.close()
    assert summary(events) == [
        ("deleted", "Dataplane", "dp-0", 1),
        ("deleted", "Dataplane", "dp-1", 1),
        ("deleted", "Dataplane", "dp-2", 1),
        ("deleted", "Mesh", "a", 1),
    ]
    assert [e.resource.mesh for e in events] == ["a", "a", "a", None]
    assert (await store.list(ListFilter("Dataplane", mesh="a"))).total == 0
    assert [r.name for r in (await store.list(ListFilter("Dataplane"))).items] == ["dp-0"]
    assert [r.name for r in (await store.list(ListFilter("Mesh"))).items] == ["b"]


async def test_a_refused_mesh_delete_keeps_its_resources(store: Store) -> None:
    m = await store.update(await store.create(mesh("a")))
    await store.create(dataplane("dp", mesh="a"))
    with pytest.raises(Conflict):
        await store.delete("Mesh", "a", version=m.meta.version - 1)
    assert (await store.list(ListFilter("Dataplane", mesh="a"))).total == 1


# -- list ------------------------------------------------------------------------------------------


async def _fill(store: Store) -> None:
    for m in ("default", "prod"):
        await store.create(mesh(m, env="dev" if m == "default" else "prod"))
    for name, m, labels in [
        ("web-2", "default", {"team": "web", "tier": "front"}),
        ("web-1", "default", {"team": "web", "tier": "front"}),
        ("api-1", "default", {"team": "api"}),
        ("web-1", "prod", {"team": "web", "tier": "front"}),
        ("db-1", "prod", {"team": "db", "kuma.io/zone": "east"}),
    ]:
        await store.create(dataplane(name, m, "web", 8080, **labels))


async def test_list_filters_by_type_mesh_prefix_and_labels(store: Store) -> None:
    await _fill(store)

    def keys(page: Any) -> list[str]:
        return [f"{r.mesh}/{r.name}" for r in page.items]

    everything = await store.list(ListFilter("Dataplane"))
    assert keys(everything) == ["default/api-1", "default/web-1", "default/web-2", "prod/db-1", "prod/web-1"]
    assert everything.total == 5 and everything.next_offset is None
    assert [r.name for r in (await store.list(ListFilter("Mesh"))).items] == ["default", "prod"]

    assert keys(await store.list(ListFilter("Dataplane", mesh="prod"))) == ["prod/db-1", "prod/web-1"]
    assert keys(await store.list(ListFilter("Dataplane", mesh="nope"))) == []
    assert keys(await store.list(ListFilter("Dataplane", name_prefix="web-"))) == [
        "default/web-1",
        "default/web-2",
        "prod/web-1",
    ]
    assert keys(await store.list(ListFilter("Dataplane", mesh="default", name_prefix="web-2"))) == ["default/web-2"]
    assert keys(await store.list(ListFilter("Dataplane", name_prefix="w%"))) == []  # no LIKE wildcards
    assert keys(await store.list(ListFilter("Dataplane", labels={"team": "web", "tier": "front"}))) == [
        "default/web-1",
        "default/web-2",
        "prod/web-1",
    ]
    assert keys(await store.list(ListFilter("Dataplane", labels={"kuma.io/zone": "east"}))) == ["prod/db-1"]
    assert keys(await store.list(ListFilter("Dataplane", labels={"team": "web", "tier": "back"}))) == []
    assert keys(await store.list(ListFilter("Dataplane", mesh="prod", labels={"team": "web"}))) == ["prod/web-1"]
    assert [r.name for r in (await store.list(ListFilter("Mesh", labels={"env": "prod"}))).items] == ["prod"]


async def test_list_pages_with_offset_limit_total_and_next_offset(store: Store) -> None:
    await _fill(store)
    flt = ListFilter("Dataplane")
    p1 = await store.list(flt, limit=2)
    assert [r.name for r in p1.items] == ["api-1", "web-1"] and p1.total == 5 and p1.next_offset == 2
    p2 = await store.list(flt, offset=2, limit=2)
    assert [f"{r.mesh}/{r.name}" for r in p2.items] == ["default/web-2", "prod/db-1"] and p2.next_offset == 4
    p3 = await store.list(flt, offset=4, limit=2)
    assert [r.name for r in p3.items] == ["web-1"] and p3.total == 5 and p3.next_offset is None
    exact = await store.list(flt, offset=3, limit=2)
    assert len(exact.items) == 2 and exact.next_offset is None
    beyond = await store.list(flt, offset=10, limit=2)
    assert beyond.items == [] and beyond.total == 5 and beyond.next_offset is None
    count_only = await store.list(flt, limit=0)
    assert count_only.items == [] and count_only.total == 5
    rest = await store.list(flt, offset=1)
    assert len(rest.items) == 4 and rest.next_offset is None
    filtered = await store.list(ListFilter("Dataplane", labels={"team": "web"}), limit=1)
    assert filtered.total == 3 and filtered.next_offset == 1


async def test_list_all_reads_every_page_in_order(store: Store) -> None:
    await _fill(store)
    everything = await list_all(store, ListFilter("Dataplane"), page_size=2)
    expected = [f"{r.mesh}/{r.name}" for r in (await store.list(ListFilter("Dataplane"))).items]
    assert [f"{r.mesh}/{r.name}" for r in everything] == expected and len(expected) == 5
    in_prod = await list_all(store, ListFilter("Dataplane", mesh="prod"), page_size=1)
    assert [r.name for r in in_prod] == ["db-1", "web-1"]


async def test_list_rejects_negative_paging(store: Store) -> None:
    with pytest.raises(InvalidInput) as e:
        await store.list(ListFilter("Mesh"), offset=-1, limit=-5)
    assert [fe.path for fe in e.value.errors] == ["offset", "limit"]


# -- watch -----------------------------------------------------------------------------------------


async def test_watch_sees_create_update_delete_in_order(store: Store) -> None:
    sub = store.watch()
    try:
        m = await store.create(mesh("default"))
        d = await store.create(dataplane("dp"))
        d = await store.update(d)
        await store.delete("Dataplane", "dp", "default")
        await store.update(m)
        events = await next_events(sub, 5)
    finally:
        sub.close()
    assert summary(events) == [
        ("created", "Mesh", "default", 1),
        ("created", "Dataplane", "dp", 1),
        ("updated", "Dataplane", "dp", 2),
        ("deleted", "Dataplane", "dp", 2),
        ("updated", "Mesh", "default", 2),
    ]
    assert events[3].resource == d  # DELETED carries the last stored state
    revisions = [e.revision for e in events]
    assert revisions == sorted(set(revisions)) and revisions[0] >= 1
    assert sub.pending() == 0


async def test_failed_writes_emit_nothing(store: Store) -> None:
    await store.create(mesh("default"))
    sub = store.watch()
    try:
        with pytest.raises(AlreadyExists):
            await store.create(mesh("default"))
        with pytest.raises(Conflict):
            await store.update(mesh("default").with_meta(version=7))
        with pytest.raises(NotFound):
            await store.delete("Mesh", "nope")
        await store.create(mesh("marker"))
        (ev,) = await next_events(sub, 1)
    finally:
        sub.close()
    assert ev.resource.name == "marker" and ev.kind is EventKind.CREATED


async def test_watch_registered_before_writes_never_misses_one(store: Store) -> None:
    subs = [store.watch(), store.watch()]
    n = 40
    try:
        await asyncio.gather(*(store.create(mesh(f"m-{i:02d}")) for i in range(n)))
        seen = [await next_events(s, n) for s in subs]
    finally:
        for s in subs:
            s.close()
    assert sorted(e.resource.name for e in seen[0]) == [f"m-{i:02d}" for i in range(n)]
    revisions = [e.revision for e in seen[0]]
    assert revisions == sorted(revisions) and len(set(revisions)) == n
    assert summary(seen[0]) == summary(seen[1]) and revisions == [e.revision for e in seen[1]]


async def test_closed_subscription_gets_nothing_more(store: Store) -> None:
    sub = store.watch()
    other = store.watch()
    sub.close()
    try:
        await store.create(mesh("a"))
        await next_events(other, 1)
    finally:
        other.close()
    assert sub.pending() == 0
    assert [e async for e in sub] == []


async def test_close_ends_watches_and_refuses_further_calls(backend: str, store: Store) -> None:
    sub = store.watch()
    await store.create(mesh("a"))
    await store.close()
    assert summary([e async for e in sub]) == [("created", "Mesh", "a", 1)]  # queued events, then the end
    with pytest.raises(StoreError, match="closed"):
        await store.get("Mesh", "a")
    with pytest.raises(StoreError, match="closed"):
        store.watch()


# -- concurrency -----------------------------------------------------------------------------------


async def test_concurrent_updates_with_the_same_version_one_wins(store: Store) -> None:
    v1 = await store.create(dataplane("dp", team="start"))
    tries = [v1.with_meta(labels={"team": f"t{i}"}) for i in range(8)]
    results = await asyncio.gather(*(store.update(r) for r in tries), return_exceptions=True)
    winners = [r for r in results if isinstance(r, Resource)]
    losers = [r for r in results if not isinstance(r, Resource)]
    assert len(winners) == 1, results
    assert all(isinstance(e, Conflict) for e in losers), losers
    stored = await store.get("Dataplane", "dp", "default")
    assert stored.meta.version == 2 and stored.meta.labels == winners[0].meta.labels


async def test_concurrent_creates_of_one_name_one_wins(store: Store) -> None:
    results = await asyncio.gather(*(store.create(mesh("same", n=str(i))) for i in range(6)), return_exceptions=True)
    assert sum(isinstance(r, Resource) for r in results) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if not isinstance(r, Resource))
