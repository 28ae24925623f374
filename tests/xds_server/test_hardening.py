"""ADS against peers that never authenticate: a first request that does not come, streams piling up from
one address, oversized first requests and metadata — each refused with a clear status, in bounded time —
and SDS secrets withheld from a stream the server marks as plaintext from a remote peer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2

from atoll.xds.peers import PeerGate, is_loopback_peer, peer_host
from atoll.xds.server import CLUSTER, SECRET, AdsServicer, Snapshot, SnapshotCache, make_server
from atoll.xds.server.admission import MAX_FIRST_MESSAGE_BYTES
from tests.helpers import free_port

METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


@contextlib.asynccontextmanager
async def serving(
    gate: PeerGate, *, hold_open: asyncio.Event | None = None, withhold: Callable[[str], bool] | None = None
) -> AsyncIterator[tuple[SnapshotCache, grpc.aio.Channel]]:
    cache = SnapshotCache()

    async def on_open(node: base_pb2.Node, metadata: Any) -> None:
        if hold_open is not None:
            await hold_open.wait()

    servicer = AdsServicer(cache, on_stream_open=on_open, gate=gate, withhold_secrets=withhold)
    port = free_port()
    server = make_server(servicer, port, host="127.0.0.1")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield cache, channel
    finally:
        await server.stop(grace=None)


def sotw(channel: grpc.aio.Channel) -> Any:
    return channel.stream_stream(
        METHOD,
        request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
        response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
    )


def first(type_url: str = CLUSTER, node_id: str = "default.web-1") -> discovery_pb2.DiscoveryRequest:
    return discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id=node_id), type_url=type_url)


def test_peer_strings() -> None:
    assert peer_host("ipv4:10.0.0.7:51234") == "10.0.0.7"
    assert peer_host("ipv6:[::1]:5") == "::1"
    assert is_loopback_peer("ipv4:127.0.0.2:1") and is_loopback_peer("ipv6:[::ffff:127.0.0.1]:1")
    assert not is_loopback_peer("ipv4:10.0.0.7:1") and not is_loopback_peer("ipv6:[2001:db8::1]:1")


async def test_a_silent_stream_is_closed_after_the_first_message_timeout() -> None:
    async with serving(PeerGate(first_message_timeout=0.3)) as (_, channel):
        call = sotw(channel)()
        started = time.monotonic()
        code = await call.code()
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "no request within 0.3s" in await call.details()
        assert time.monotonic() - started < 3.0


async def test_unauthenticated_streams_per_peer_are_bounded() -> None:
    held = asyncio.Event()
    gate = PeerGate(pending_per_peer=3, exempt_loopback=False)
    async with serving(gate, hold_open=held) as (_, channel):
        calls = [sotw(channel)() for _ in range(3)]
        for call in calls:
            await call.write(first(node_id=f"default.web-{id(call)}"))
        deadline = time.monotonic() + 5
        while gate.pending("ipv4:127.0.0.1:1") < 3:
            assert time.monotonic() < deadline, "the three streams never became pending"
            await asyncio.sleep(0.01)
        extra = sotw(channel)()
        await extra.write(first(node_id="default.web-extra"))
        assert await extra.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        held.set()  # authenticated now: they count no more
        deadline = time.monotonic() + 5
        while gate.pending("ipv4:127.0.0.1:1"):
            assert time.monotonic() < deadline, "authenticated streams still counted as pending"
            await asyncio.sleep(0.01)
        for call in calls:
            call.cancel()


async def test_an_oversized_first_request_is_refused() -> None:
    async with serving(PeerGate()) as (_, channel):
        call = sotw(channel)()
        big = first()
        big.resource_names.append("x" * (MAX_FIRST_MESSAGE_BYTES + 10))
        await call.write(big)
        assert await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "first request may be at most" in await call.details()
        huge = sotw(channel)()
        too_big = first()
        too_big.resource_names.append("x" * (5 * 1024 * 1024))  # over the server's message bound
        await huge.write(too_big)
        assert await huge.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_oversized_metadata_is_refused() -> None:
    async with serving(PeerGate()) as (_, channel):
        call = sotw(channel)(metadata=(("x-atoll-token", "t" * 64 * 1024),))
        with contextlib.suppress(grpc.aio.AioRpcError):
            await call.write(first())
        assert await call.code() != grpc.StatusCode.OK
        ok = sotw(channel)()  # the server serves on
        await ok.write(first())
        ok.cancel()


def _secret_snapshot() -> Snapshot:
    secret = secret_pb2.Secret(
        name="identity",
        tls_certificate=common_pb2.TlsCertificate(private_key=base_pb2.DataSource(inline_string="KEY")),
    )
    return Snapshot.build(secrets=[secret])


async def _first_secret_response(channel: grpc.aio.Channel) -> discovery_pb2.DiscoveryResponse | None:
    call = sotw(channel)()
    request = first(SECRET)
    request.resource_names.append("identity")
    await call.write(request)
    try:
        async with asyncio.timeout(1.0):
            response: discovery_pb2.DiscoveryResponse = await call.read()
            return response
    except TimeoutError:
        return None
    finally:
        call.cancel()


async def test_secrets_are_withheld_from_a_stream_marked_plaintext_remote() -> None:
    async with serving(PeerGate(), withhold=lambda peer: True) as (cache, channel):
        cache.set_snapshot("default.web-1", _secret_snapshot())
        response = await _first_secret_response(channel)
        assert response is None or not response.resources  # no private key on this stream
    async with serving(PeerGate(), withhold=lambda peer: False) as (cache, channel):
        cache.set_snapshot("default.web-1", _secret_snapshot())
        response = await _first_secret_response(channel)
        assert response is not None and len(response.resources) == 1
