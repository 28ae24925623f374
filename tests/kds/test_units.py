"""The store-side reconcile, the backoff, the address parser and the CP options of KDS; and a peer
that breaks the protocol over real gRPC (it gets an error, global keeps serving)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from envoy.service.discovery.v3 import discovery_pb2

from atoll.cp.config import load_config
from atoll.errors import ConfigError
from atoll.kds.client import backoff_delay, parse_global_address
from atoll.kds.names import ORIGIN, from_global
from atoll.kds.protocol import Batch
from atoll.kds.reconcile import StoreSink
from atoll.kds.server import GLOBAL_TO_ZONE, SERVICE
from atoll.store import ListFilter, MemoryStore, Store
from tests.helpers import await_until
from tests.kds.conftest import Federation
from tests.kds.data import mesh, mtp


def _batch(
    type: str,
    full: bool,
    resources: list[object],
    removed: list[tuple[str, str | None]] = (),
    refused: frozenset[str] = frozenset(),
) -> Batch:  # type: ignore[assignment]
    return Batch(type, "n", full, list(resources), list(removed), [], refused)  # type: ignore[arg-type]


async def test_full_set_reconciles_only_what_the_stream_owns_in_one_transaction() -> None:
    store = MemoryStore()
    sink = StoreSink(store, scope={ORIGIN: "global"}, adopt=from_global, local_name=lambda n, m: n)
    await store.create(mesh("default"))
    local = await store.create(mtp("local"))  # written in the zone: not the stream's
    await store.create(from_global(mtp("stale")))
    await store.create(from_global(mtp("kept-while-unreadable")))
    same = await store.create(from_global(mtp("same")))
    sub = store.watch()
    events = await sink.apply(
        _batch(
            "MeshTrafficPermission",
            True,
            [mtp("same"), mtp("new")],
            refused=frozenset({"default/kept-while-unreadable"}),
        )
    )
    assert [(e.kind.value, e.resource.name) for e in events] == [("created", "new"), ("deleted", "stale")]
    assert sub.pending() == 2
    sub.close()
    names = [r.name for r in (await store.list(ListFilter(type="MeshTrafficPermission"))).items]
    assert names == ["kept-while-unreadable", "local", "new", "same"]
    assert (await store.get("MeshTrafficPermission", "same", "default")).meta.version == same.meta.version
    assert (await store.get("MeshTrafficPermission", "local", "default")).meta.version == local.meta.version
    # A delta: removals outside the scope are ignored.
    events = await sink.apply(_batch("MeshTrafficPermission", False, [], [("local", "default"), ("new", "default")]))
    assert [(e.kind.value, e.resource.name) for e in events] == [("deleted", "new")]
    assert await sink.apply(_batch("MeshTrafficPermission", False, [], [("gone", "default")])) == []


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    assert backoff_delay(0, 0.2, 10, rand=lambda: 1.0) == pytest.approx(0.2)
    assert backoff_delay(3, 0.2, 10, rand=lambda: 1.0) == pytest.approx(1.6)
    assert backoff_delay(50, 0.2, 10, rand=lambda: 1.0) == pytest.approx(10)
    assert backoff_delay(5, 0.2, 10, rand=lambda: 0.0) == pytest.approx(0.1)  # never a busy loop
    delays = {backoff_delay(4, 0.2, 10) for _ in range(20)}
    assert len(delays) > 1 and all(0.1 <= d <= 3.2 for d in delays)


def test_global_address_parsing() -> None:
    a = parse_global_address("grpcs://global.example:5685")
    assert (a.tls, a.host, a.port, a.target) == (True, "global.example", 5685, "global.example:5685")
    assert not parse_global_address("grpc://127.0.0.1:1").tls
    assert parse_global_address("grpcs://[::1]:5685").host == "::1"
    for bad, msg in [
        ("https://x:1", "must be grpcs://"),
        ("global:5685", "must be grpcs://"),
        ("grpcs://global", "host and a port"),
        ("grpcs://global:99999", "out of range"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_global_address(bad)


def test_cp_options_of_multi_zone(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    env = {"HOME": str(tmp_path)}
    c = load_config(
        {"mode": "zone", "zone": "z1", "global_address": "grpcs://g:5685", "zone_token_file": str(token)}, env, None
    )
    assert c.global_address == "grpcs://g:5685" and c.zone_token_file == token and c.kds_port == 5685
    g = load_config({"mode": "global", "kds_port": "6000"}, env, None)
    assert g.kds_port == 6000 and g.kds_tls_cert is None
    cases: list[tuple[dict[str, object], str]] = [
        (
            {"mode": "zone", "zone": "z1", "global_address": "http://g:1", "zone_token_file": str(token)},
            "global_address: must be grpcs://",
        ),
        (
            {"mode": "zone", "zone": "z1", "global_address": "grpcs://g:1"},
            "zone_token_file: required with global_address",
        ),
        ({"mode": "global", "global_address": "grpcs://g:1"}, "global_address: only used with mode=zone"),
        (
            {"mode": "zone", "zone": "z1", "zone_token_file": str(token)},
            "zone_token_file: only used with global_address",
        ),
        (
            {"mode": "zone", "zone": "z1", "global_address": "grpcs://g:1", "zone_token_file": str(tmp_path / "nope")},
            "zone_token_file: no such file",
        ),
        ({"mode": "global", "kds_tls_cert": str(token)}, "kds_tls_key: kds_tls_cert and kds_tls_key go together"),
        (
            {"mode": "zone", "zone": "z", "kds_tls_cert": str(token), "kds_tls_key": str(token)},
            "kds_tls_cert: only used with mode=global",
        ),
        ({"mode": "global", "kds_port": "5681"}, "kds_port: 5681 is already used by api_port"),
        ({"mode": "global", "kds_port": "0"}, "kds_port: must be a port number"),
    ]
    for flags, message in cases:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            load_config(flags, env, None)


async def test_a_peer_that_breaks_the_protocol_gets_an_error_and_global_keeps_serving(federation: Federation) -> None:
    g = federation
    await g.start_global()
    await g.global_store.create(mesh("default"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{g.port}") as channel:
        call = channel.stream_stream(
            f"/{SERVICE}/{GLOBAL_TO_ZONE}",
            request_serializer=discovery_pb2.DeltaDiscoveryRequest.SerializeToString,
            response_deserializer=discovery_pb2.DeltaDiscoveryResponse.FromString,
        )(metadata=(("atoll-zone", "rogue"), ("atoll-instance", "i"), ("authorization", "Bearer token-rogue")))
        await call.write(discovery_pb2.DeltaDiscoveryRequest(type_url="NoSuchType"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "unknown type 'NoSuchType'" in (err.value.details() or "")
        # Bytes that are no protobuf at all end only that stream, too.
        raw = channel.stream_stream(f"/{SERVICE}/{GLOBAL_TO_ZONE}")(
            metadata=(("atoll-zone", "rogue"), ("atoll-instance", "i"), ("authorization", "Bearer token-rogue"))
        )
        await raw.write(b"\xff\xff\xff")
        with pytest.raises(grpc.aio.AioRpcError):
            await raw.read()
        # No zone name at all.
        anon = channel.stream_stream(f"/{SERVICE}/{GLOBAL_TO_ZONE}")()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await anon.read()
        assert "atoll-zone" in (err.value.details() or "")
    z1 = await g.start_zone("zone-1")
    await await_until(lambda: _zone_has_mesh(z1.store))  # the good zone syncs as usual


async def _zone_has_mesh(store: Store) -> bool:
    return (await store.list(ListFilter(type="Mesh"))).total == 1
