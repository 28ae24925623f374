"""Contract tests of ``Store.apply``: a batch of puts and deletes in one transaction, on every backend."""

from __future__ import annotations

import pytest

from atoll.errors import AlreadyExists, Conflict, NotFound
from atoll.store import Create, Delete, EventKind, ListFilter, Put, Store
from tests.store.data import dataplane, mesh, next_events, summary


async def test_apply_creates_updates_and_deletes_in_order(store: Store) -> None:
    await store.create(mesh("default"))
    old = await store.create(dataplane("old"))
    keep = await store.create(dataplane("keep"))
    sub = store.watch()
    try:
        events = await store.apply(
            [
                Put(dataplane("new", port=9090)),
                Put(dataplane("keep", port=7070, team="a")),  # version 0: whatever is stored
                Delete("Dataplane", "old", "default", version=old.meta.version),
                Delete("Dataplane", "never-was", "default", missing_ok=True),
            ]
        )
        seen = await next_events(sub, 3)
    finally:
        sub.close()
    assert summary(events) == [
        ("created", "Dataplane", "new", 1),
        ("updated", "Dataplane", "keep", 2),
        ("deleted", "Dataplane", "old", 1),
    ]
    assert summary(seen) == summary(events)
    assert [e.revision for e in seen] == [e.revision for e in events]
    assert events[0].revision + 2 == events[2].revision  # consecutive revisions, one commit
    stored = await store.get("Dataplane", "keep", "default")
    assert stored.meta.version == 2 and stored.meta.labels == {"team": "a"}
    assert stored.meta.creation_time == keep.meta.creation_time
    assert stored.spec.networking.inbound[0].port == 7070
    names = [r.name for r in (await store.list(ListFilter(type="Dataplane"))).items]
    assert names == ["keep", "new"]


async def test_apply_is_all_or_nothing(store: Store) -> None:
    await store.create(mesh("default"))
    await store.create(dataplane("a"))
    sub = store.watch()
    try:
        with pytest.raises(NotFound):
            await store.apply([Put(dataplane("b")), Delete("Dataplane", "a", "default"), Delete("Dataplane", "x", "m")])
        with pytest.raises(Conflict):
            await store.apply([Put(dataplane("c")), Put(dataplane("a").with_meta(version=9))])
        with pytest.raises(NotFound):  # a versioned put of something absent is not a create
            await store.apply([Put(dataplane("d").with_meta(version=1))])
        await store.create(mesh("marker"))
        (ev,) = await next_events(sub, 1)
    finally:
        sub.close()
    assert ev.resource.name == "marker"  # the failed batches emitted nothing
    names = [r.name for r in (await store.list(ListFilter(type="Dataplane"))).items]
    assert names == ["a"]


async def test_apply_sees_its_own_earlier_ops_and_cascades_mesh_deletes(store: Store) -> None:
    events = await store.apply(
        [
            Put(mesh("tmp")),
            Put(dataplane("x", mesh="tmp")),
            Put(dataplane("x", mesh="tmp", port=81)),  # updates what the batch created
            Delete("Mesh", "tmp"),
            Put(mesh("default")),
        ]
    )
    assert summary(events) == [
        ("created", "Mesh", "tmp", 1),
        ("created", "Dataplane", "x", 1),
        ("updated", "Dataplane", "x", 2),
        ("deleted", "Dataplane", "x", 2),
        ("deleted", "Mesh", "tmp", 1),
        ("created", "Mesh", "default", 1),
    ]
    assert events[3].kind is EventKind.DELETED
    assert (await store.list(ListFilter(type="Dataplane"))).total == 0
    assert [r.name for r in (await store.list(ListFilter(type="Mesh"))).items] == ["default"]


async def test_apply_of_nothing_is_a_no_op(store: Store) -> None:
    assert await store.apply([]) == []


async def test_apply_creates_in_one_transaction_and_can_keep_what_exists(store: Store) -> None:
    """A Mesh and its initial policies are one ``apply`` of ``Create``s: all or none."""
    await store.create(dataplane("a"))
    sub = store.watch()
    try:
        with pytest.raises(AlreadyExists):  # the second create fails: the mesh is not created either
            await store.apply([Create(mesh("half")), Create(dataplane("a"))])
        with pytest.raises(NotFound):
            await store.get("Mesh", "half")
        kept = await store.get("Dataplane", "a", "default")
        events = await store.apply(
            [Create(mesh("whole")), Create(dataplane("a", port=1), exists_ok=True), Create(dataplane("b"))]
        )
        seen = await next_events(sub, 2)
    finally:
        sub.close()
    assert summary(events) == [("created", "Mesh", "whole", 1), ("created", "Dataplane", "b", 1)]
    assert summary(seen) == summary(events)  # the failed batch emitted nothing; the kept one no event
    assert await store.get("Dataplane", "a", "default") == kept  # exists_ok left it as it was
