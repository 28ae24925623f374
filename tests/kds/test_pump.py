"""``run_sender`` on the shared stream pump: how a KDS sender stream ends, with fakes (no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import grpc
import pytest
from envoy.service.discovery.v3 import discovery_pb2

from atoll.errors import AtollError, PeerProtocolError
from atoll.kds.protocol import Sender
from atoll.kds.pump import run_sender
from atoll.resources.meta import Resource
from atoll.store.protocol import ChangeEvent, Subscription
from tests.helpers import await_until


class FakeStream:
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[Any] = asyncio.Queue()
        self.written: list[Any] = []

    async def read(self) -> Any:
        item = await self.incoming.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def write(self, message: Any) -> None:
        self.written.append(message)


class FakeSource:
    types = ("Mesh",)

    def __init__(self) -> None:
        self.loads = 0

    async def load(self, type: str) -> list[Resource[Any]]:
        self.loads += 1
        return []

    async def load_one(self, type: str, name: str, mesh: str | None) -> Resource[Any] | None:
        return None

    def affected(self, changed: Iterable[str]) -> set[str]:
        return set(changed)

    def per_resource(self, type: str) -> bool:
        return False


class FakeStore:
    """Only ``watch()``: a subscription the test controls, or one whose iteration fails."""

    def __init__(self, *, broken: bool = False) -> None:
        self.queue: asyncio.Queue[ChangeEvent | None] = asyncio.Queue()
        self.closed = 0
        self.broken = broken

    def watch(self) -> Subscription:
        def on_close() -> None:
            self.closed += 1

        return (BrokenSubscription if self.broken else Subscription)(self.queue, on_close)


class BrokenSubscription(Subscription):
    async def __anext__(self) -> ChangeEvent:
        raise ConnectionError("store connection lost")


def subscribe(type: str) -> discovery_pb2.DeltaDiscoveryRequest:
    return discovery_pb2.DeltaDiscoveryRequest(type_url=type)


async def serve(stream: FakeStream, store: FakeStore, source: FakeSource | None = None) -> None:
    source = source or FakeSource()
    await asyncio.wait_for(run_sender(stream, Sender(source.types), source, store, label="t"), 5)  # type: ignore[arg-type]


async def test_the_peer_ending_the_stream_ends_the_sender_after_answering() -> None:
    stream, store, source = FakeStream(), FakeStore(), FakeSource()
    stream.incoming.put_nowait(subscribe("Mesh"))
    stream.incoming.put_nowait(grpc.aio.EOF)
    await serve(stream, store, source)
    assert source.loads == 1 and len(stream.written) == 1  # the full set of the subscribed type
    assert store.closed == 1


async def test_a_read_error_is_raised_to_the_caller() -> None:
    stream, store = FakeStream(), FakeStore()
    stream.incoming.put_nowait(ConnectionResetError("zone went away"))
    with pytest.raises(ConnectionResetError, match="zone went away"):
        await serve(stream, store)
    assert store.closed == 1


async def test_a_failing_store_watch_ends_the_sender_without_waiting_for_the_peer() -> None:
    stream, store = FakeStream(), FakeStore(broken=True)
    with pytest.raises(AtollError, match="t: watching changes failed: store connection lost"):
        await serve(stream, store)
    assert store.closed == 1


async def test_a_peer_protocol_error_ends_the_sender() -> None:
    stream, store = FakeStream(), FakeStore()
    stream.incoming.put_nowait(subscribe("Nope"))
    with pytest.raises(PeerProtocolError, match="unknown type 'Nope'"):
        await serve(stream, store)


async def test_cancelling_the_sender_stops_its_reader_and_watch() -> None:
    stream, store = FakeStream(), FakeStore()
    task = asyncio.create_task(serve(stream, store))
    stream.incoming.put_nowait(subscribe("Mesh"))
    await await_until(lambda: stream.written)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.closed == 1  # and the leak check of conftest.py sees no task left behind
