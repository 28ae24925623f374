"""PUT under faults and contention (issue 14, items 6 and 9).

- A Mesh and its initial policies are one transaction: a failure between them leaves no mesh, and
  a retried PUT creates all of them.
- A mesh that an older version left half-created gets its missing defaults on the next PUT; meshes
  whose defaults were removed or edited on purpose do not (``atoll.api.writes``).
- Without ``If-Match`` the last writer wins: 20 concurrent writers get no 409.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from atoll.api.writes import ResourceWriter
from atoll.resources import Resource, decode
from atoll.resources.defaults import initial_policies
from atoll.store import ListFilter, SqliteStore, Store, sqlite
from tests.api.conftest import ClientFactory, dataplane, put_mesh

POLICY_TYPES = ("MeshCircuitBreaker", "MeshRetry", "MeshTimeout")


def _mesh(name: str = "m", **spec: Any) -> Resource[Any]:
    return decode({"type": "Mesh", "name": name, **spec})


async def _policies(store: Store, mesh: str = "m") -> list[str]:
    out = []
    for t in POLICY_TYPES:
        out += [r.name for r in (await store.list(ListFilter(type=t, mesh=mesh))).items]
    return sorted(out)


async def test_a_failure_between_a_mesh_and_its_defaults_leaves_no_half_mesh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await SqliteStore.open(tmp_path / "atoll.db")
    writer = ResourceWriter(store, initial_policies)
    real_step = sqlite._step

    def dies_at_the_retry_default(conn: Any, step: Any) -> Any:
        if getattr(step, "resource", None) is not None and step.resource.type == "MeshRetry":
            raise RuntimeError("killed")  # the process dies while the defaults are written
        return real_step(conn, step)

    try:
        monkeypatch.setattr(sqlite, "_step", dies_at_the_retry_default)
        with pytest.raises(RuntimeError):
            await writer.write(_mesh(), None)
        assert (await store.list(ListFilter(type="Mesh"))).total == 0
        assert await _policies(store) == []
        monkeypatch.setattr(sqlite, "_step", real_step)
        _, created = await writer.write(_mesh(), None)  # the client's retry
        assert created
        assert await _policies(store) == sorted(p.name for p in initial_policies(_mesh()))
    finally:
        await store.close()


async def test_a_put_completes_a_mesh_an_older_version_left_half_created(store: Store) -> None:
    writer = ResourceWriter(store, initial_policies)
    defaults = initial_policies(_mesh())
    await store.create(_mesh())  # what an older version left after kill -9: the mesh, one default
    await store.create(defaults[0])
    stored, created = await writer.write(_mesh(), None)
    assert not created and stored.meta.version == 2
    assert await _policies(store) == sorted(p.name for p in defaults)


async def test_a_put_never_recreates_defaults_removed_or_edited_on_purpose(store: Store) -> None:
    writer = ResourceWriter(store, initial_policies)
    for name in ("none", "edited", "updated"):
        await writer.write(_mesh(name), None)
    for p in initial_policies(_mesh("none")):  # every default removed
        await store.delete(p.type, p.name, p.mesh)
    first, *rest = initial_policies(_mesh("edited"))
    for p in rest:  # some removed, the one left edited
        await store.delete(p.type, p.name, p.mesh)
    await store.update(await store.get(first.type, first.name, first.mesh))
    await writer.write(_mesh("updated"), None)
    first, *rest = initial_policies(_mesh("updated"))
    for p in rest:  # some removed after the mesh was updated
        await store.delete(p.type, p.name, p.mesh)
    before = {m: await _policies(store, m) for m in ("none", "edited", "updated")}
    for name in ("none", "edited", "updated"):
        await writer.write(_mesh(name), None)
    assert {m: await _policies(store, m) for m in ("none", "edited", "updated")} == before
    assert before["none"] == [] and len(before["edited"]) == len(before["updated"]) == 1


async def test_unconditional_puts_of_20_concurrent_writers_never_conflict(make_client: ClientFactory) -> None:
    api = await make_client()
    await put_mesh(api)
    writers, writes = 20, 10

    async def writer(i: int) -> list[int]:
        statuses = []
        for j in range(writes):
            body = dataplane("contended", address=f"10.0.{i}.{j + 1}")
            statuses.append((await api.put("/meshes/default/dataplanes/contended", json=body)).status_code)
        return statuses

    results = await asyncio.gather(*(writer(i) for i in range(writers)))
    statuses = [s for r in results for s in r]
    assert sorted(set(statuses)) in ([200], [200, 201]) and statuses.count(201) == 1, statuses
    stored = (await api.get("/meshes/default/dataplanes/contended")).json()
    assert stored["networking"]["address"].startswith("10.0.")
