"""The grpc.aio pump with a real gRPC client: both ADS methods, hooks, and malformed streams that fail
alone while the server keeps serving the others."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from atoll.xds.server import (
    CLUSTER,
    ENDPOINT,
    AdsServicer,
    Snapshot,
    SnapshotCache,
    StreamRejected,
    StreamStatus,
    make_server,
)
from tests.helpers import await_until, free_port

from .xds_resources import cla, cluster

SERVICE = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"


def snap(port: int = 8080, timeout_s: int = 1) -> Snapshot:
    return Snapshot.build(clusters=[cluster("c1", timeout_s=timeout_s)], endpoints=[cla("c1", port)])


class Harness:
    def __init__(self) -> None:
        self.cache = SnapshotCache()
        self.opened: list[tuple[str, dict[str, Any]]] = []
        self.closed: list[tuple[str, int]] = []
        self.statuses: list[tuple[str, StreamStatus]] = []

        async def on_open(node: base_pb2.Node, metadata: Any) -> None:
            if node.id == "default.intruder":
                raise StreamRejected(grpc.StatusCode.PERMISSION_DENIED, "unknown dataplane default.intruder")
            if metadata.get("authorization") == "bad":
                raise StreamRejected(grpc.StatusCode.UNAUTHENTICATED, "invalid token")
            self.opened.append((node.id, dict(metadata)))

        self.servicer = AdsServicer(
            self.cache,
            on_stream_open=on_open,
            on_stream_close=lambda n, i: self.closed.append((n, i)),
            on_status=lambda n, s: self.statuses.append((n, s)),
        )
        self.port = free_port()


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[Harness, grpc.aio.Channel]]:
    """A started server and a client channel to it; both are gone when the block ends.

    (Not a fixture: the suite's leaked-task check runs before fixture teardown would stop the server.)
    """
    harness = Harness()
    server = make_server(harness.servicer, harness.port, host="127.0.0.1")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{harness.port}") as ch:
            yield harness, ch
    finally:
        await server.stop(grace=None)


def node(node_id: str = "default.web-1") -> base_pb2.Node:
    return base_pb2.Node(id=node_id, cluster="web")


async def test_sotw_stream_serves_pushes_and_acks() -> None:
    async with serving() as (h, channel):
        await _test_sotw_stream_serves_pushes_and_acks(h, channel)


async def _test_sotw_stream_serves_pushes_and_acks(h: Harness, channel: grpc.aio.Channel) -> None:
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    call = stub.StreamAggregatedResources(metadata=(("authorization", "t0k3n"),))
    await call.write(discovery_pb2.DiscoveryRequest(node=node(), type_url=CLUSTER))
    s1 = snap()
    await await_until(lambda: _async(h.servicer.open_streams == 1), what="stream open")
    h.cache.set_snapshot("default.web-1", s1)
    resp = await call.read()
    assert resp.type_url == CLUSTER and resp.version_info == s1.version(CLUSTER) and len(resp.resources) == 1
    await call.write(
        discovery_pb2.DiscoveryRequest(type_url=CLUSTER, version_info=resp.version_info, response_nonce=resp.nonce)
    )
    await await_until(lambda: _async(bool(h.statuses) and h.statuses[-1][1].types[CLUSTER].ack_count == 1))
    s2 = snap(timeout_s=2)
    h.cache.set_snapshot("default.web-1", s2)
    resp2 = await call.read()
    assert resp2.version_info == s2.version(CLUSTER) and resp2.nonce != resp.nonce
    assert [(n, md.get("authorization")) for n, md in h.opened] == [("default.web-1", "t0k3n")]
    [status] = h.servicer.statuses()
    assert status.node_id == "default.web-1" and status.types[CLUSTER].sent_count == 2
    await call.done_writing()
    assert await call.read() is grpc.aio.EOF
    assert await call.code() == grpc.StatusCode.OK
    await await_until(lambda: _async(len(h.closed) == 1))
    assert h.closed[0][0] == "default.web-1" and h.servicer.open_streams == 0


async def test_delta_stream() -> None:
    async with serving() as (h, channel):
        await _test_delta_stream(h, channel)


async def _test_delta_stream(h: Harness, channel: grpc.aio.Channel) -> None:
    s1 = snap()
    h.cache.set_snapshot("default.web-1", s1)
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    call = stub.DeltaAggregatedResources()
    await call.write(discovery_pb2.DeltaDiscoveryRequest(node=node(), type_url=CLUSTER))
    resp = await call.read()
    assert [(r.name, r.version) for r in resp.resources] == [("c1", s1.resources(CLUSTER)["c1"].version)]
    await call.write(discovery_pb2.DeltaDiscoveryRequest(type_url=ENDPOINT, resource_names_subscribe=["c1"]))
    eds = await call.read()
    assert eds.type_url == ENDPOINT and [r.name for r in eds.resources] == ["c1"]
    h.cache.set_snapshot("default.web-1", Snapshot.build(clusters=[], endpoints=[]))
    removed = [await call.read(), await call.read()]
    assert [(r.type_url, list(r.removed_resources)) for r in removed] == [(CLUSTER, ["c1"]), (ENDPOINT, ["c1"])]
    call.cancel()
    await await_until(lambda: _async(h.servicer.open_streams == 0))


async def _async(value: bool) -> bool:
    return value


async def _expect_error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        while await call.read() is not grpc.aio.EOF:
            pass
    return e.value


async def test_malformed_and_rejected_streams_fail_alone() -> None:
    async with serving() as (h, channel):
        await _test_malformed_and_rejected_streams_fail_alone(h, channel)


async def _test_malformed_and_rejected_streams_fail_alone(h: Harness, channel: grpc.aio.Channel) -> None:
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    h.cache.set_snapshot("default.web-1", snap())
    good = stub.StreamAggregatedResources()
    await good.write(discovery_pb2.DiscoveryRequest(node=node(), type_url=CLUSTER))
    first = await good.read()

    no_node = stub.StreamAggregatedResources()
    await no_node.write(discovery_pb2.DiscoveryRequest(type_url=CLUSTER))
    err = await _expect_error(no_node)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "node.id" in (err.details() or "")

    bad_type = stub.DeltaAggregatedResources()
    await bad_type.write(discovery_pb2.DeltaDiscoveryRequest(node=node("default.web-2"), type_url="garbage"))
    err = await _expect_error(bad_type)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "'garbage'" in (err.details() or "")

    later_bad = stub.StreamAggregatedResources()
    await later_bad.write(discovery_pb2.DiscoveryRequest(node=node("default.web-3"), type_url=CLUSTER))
    await later_bad.write(discovery_pb2.DiscoveryRequest(type_url="type.googleapis.com/google.protobuf.Empty"))
    err = await _expect_error(later_bad)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "google.protobuf.Empty" in (err.details() or "")

    intruder = stub.StreamAggregatedResources()
    await intruder.write(discovery_pb2.DiscoveryRequest(node=node("default.intruder"), type_url=CLUSTER))
    err = await _expect_error(intruder)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and err.details() == "unknown dataplane default.intruder"

    bad_token = stub.StreamAggregatedResources(metadata=(("authorization", "bad"),))
    await bad_token.write(discovery_pb2.DiscoveryRequest(node=node("default.web-4"), type_url=CLUSTER))
    err = await _expect_error(bad_token)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED

    undecodable = channel.stream_stream(
        SERVICE + "StreamAggregatedResources", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )()
    await undecodable.write(b"\xff\xff\xff\xff")
    err = await _expect_error(undecodable)
    assert err.code() != grpc.StatusCode.OK

    # The good stream is still served.
    s2 = snap(port=9090)
    h.cache.set_snapshot("default.web-1", snap(port=9090, timeout_s=5))
    resp = await good.read()
    assert resp.nonce != first.nonce and resp.version_info != first.version_info
    assert s2.version(CLUSTER) != resp.version_info
    good.cancel()
    await await_until(lambda: _async(h.servicer.open_streams == 0))
    # Streams refused by on_stream_open were never opened, so they are not reported closed.
    assert sorted(n for n, _ in h.closed) == ["default.web-1", "default.web-2", "default.web-3"]


async def test_a_snapshot_wakes_every_stream_of_its_node_only() -> None:
    async with serving() as (h, channel):
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        h.cache.set_snapshot("default.web-1", snap())
        h.cache.set_snapshot("default.other", snap())
        calls = [stub.StreamAggregatedResources() for _ in range(3)]
        for call, node_id in zip(calls, ["default.web-1", "default.web-1", "default.other"], strict=True):
            await call.write(discovery_pb2.DiscoveryRequest(node=node(node_id), type_url=CLUSTER))
            first = await call.read()
            await call.write(discovery_pb2.DiscoveryRequest(type_url=CLUSTER, response_nonce=first.nonce))
        s2 = snap(timeout_s=7)
        h.cache.set_snapshot("default.web-1", s2)
        for call in calls[:2]:
            assert (await call.read()).version_info == s2.version(CLUSTER)
        s3 = snap(timeout_s=8)
        h.cache.set_snapshot("default.other", s3)
        assert (await calls[2].read()).version_info == s3.version(CLUSTER)
        for call in calls:
            call.cancel()
        await await_until(lambda: _async(h.servicer.open_streams == 0))
