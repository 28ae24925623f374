"""One bad resource never stops config for the others, and text no config can carry is refused at
every entry (node metadata here; REST in ``tests/api/test_hostile_input.py``, KDS and the CLI's YAML
in ``tests/resources/test_hostile_text.py``).

The defect: a Dataplane tag holding a lone surrogate (``"\\ud800"``) made every proxy that reaches
that service fail generation (protobuf cannot encode it), so they all stopped getting config.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from atoll.errors import NotFound
from atoll.proxies.inventory import Inventory
from atoll.proxies.lifecycle import META_DATAPLANE, DataplaneLifecycle
from atoll.proxies.reconciler import ProxyReconciler
from atoll.proxies.removal import RemovalTimers
from atoll.resources import Resource, decode, encode
from atoll.store import MemoryStore
from atoll.xds.server import SnapshotCache, StreamRejected
from tests.helpers import await_until
from tests.proxies.test_reconciler import dp, eds_addresses


def poisoned(r: Resource[Any]) -> Resource[Any]:
    """``r`` with a lone surrogate in its first inbound's tags, built past the codec's validation
    (as a store written before the fix, or by any bypass, may hold it)."""
    data = r.spec_dict()
    data["networking"]["inbound"][0]["tags"]["version"] = "\ud800"
    return r.with_spec(type(r.spec).model_validate(data))


NODES = ("default.web", "default.backend-1", "default.backend-2", "default.other", "default.db-1")


async def _start(store: MemoryStore) -> tuple[SnapshotCache, ProxyReconciler, Inventory, asyncio.Task[None]]:
    cache = SnapshotCache()
    rec = ProxyReconciler(store, cache, zone="zone-1", window=0.0)
    inventory = Inventory(cp_instance="test")
    DataplaneLifecycle(store, rec, inventory, RemovalTimers(store, inventory, grace=60, zone="zone-1"), xds_port=1)
    for node in NODES:
        cache.watch(node, lambda s: None)
        inventory.opened(node, envoy_version="1", kind="sidecar")
    task = asyncio.create_task(rec.run())
    await asyncio.wait_for(rec.ready.wait(), 5)
    return cache, rec, inventory, task


@pytest.mark.parametrize("when", ["stored-before-start", "written-while-running"])
async def test_a_poisoned_dataplane_does_not_stop_config_for_the_others(when: str) -> None:
    store = MemoryStore()
    await store.create(decode({"type": "Mesh", "name": "default"}))
    good = [dp("backend-2", "backend", 8081), dp("web", "web", 8000, reaches=("backend",)), dp("db-1", "db", 5432)]
    good.append(dp("other", "other", 8002, reaches=("db",)))
    for r in good:
        await store.create(r)
    if when == "stored-before-start":
        await store.create(poisoned(dp("backend-1", "backend", 8080)))
        cache, _rec, inventory, task = await _start(store)
    else:
        await store.create(dp("backend-1", "backend", 8080))
        cache, _rec, inventory, task = await _start(store)
        await await_until(lambda: eds_addresses(cache, "default.web", "backend") == [8080, 8081], what="both")
        current = await store.get("Dataplane", "backend-1", "default")
        await store.update(poisoned(current))
    try:
        # web reaches the poisoned proxy's service: it is configured with the good endpoint only.
        await await_until(lambda: eds_addresses(cache, "default.web", "backend") == [8081], what="web configured")
        assert cache.get("default.other") is not None and cache.get("default.backend-2") is not None
        insight = inventory.get("default.backend-1")
        assert insight is not None and insight.config_error is not None
        assert "lone surrogate" in insight.config_error
        assert insight.to_json()["configError"] == insight.config_error
        web = inventory.get("default.web")
        assert web is not None and web.config_error is None
        # Fixing the resource lets it back in.
        current = await store.get("Dataplane", "backend-1", "default")
        await store.update(dp("backend-1", "backend", 8080).with_meta(version=current.meta.version))
        await await_until(lambda: eds_addresses(cache, "default.web", "backend") == [8080, 8081], what="back")
        fixed = inventory.get("default.backend-1")
        assert fixed is not None and fixed.config_error is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


@pytest.mark.parametrize("bad", ["\ud800", "a\x00b"])
async def test_node_metadata_with_unstorable_text_is_refused_naming_the_field(bad: str) -> None:
    store = MemoryStore()
    await store.create(decode({"type": "Mesh", "name": "default"}))
    cache = SnapshotCache()
    rec = ProxyReconciler(store, cache, zone="zone-1", window=0.0)
    inventory = Inventory(cp_instance="test")
    lifecycle = DataplaneLifecycle(
        store, rec, inventory, RemovalTimers(store, inventory, grace=60, zone="zone-1"), xds_port=1
    )
    doc = encode(dp("web", "web", 8000), with_times=False)
    doc["networking"]["inbound"][0]["tags"]["version"] = bad
    metadata = struct_pb2.Struct()
    metadata.update({META_DATAPLANE: json.dumps(doc)})  # ASCII JSON: the escape travels, not the character
    node = base_pb2.Node(id="default.web", metadata=metadata)
    with pytest.raises(StreamRejected) as caught:
        await lifecycle.on_stream_open(node, {})
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "networking.inbound[0].tags.version" in str(caught.value)
    with pytest.raises(NotFound):
        await store.get("Dataplane", "web", "default")
    await store.close()
