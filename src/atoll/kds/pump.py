"""Thin pumps between one gRPC stream and a sans-I/O machine; the same code runs on both CPs.

``run_sender`` owns a ``Sender`` on an ``atoll.xds.pump.StreamPump`` (the same pump as ADS): its reader
task queues the peer's requests, a store watch (a helper task of the pump, with ``_Changes``) marks
what changed (event driven: no polling interval; events that arrive while a reload runs are
coalesced into the next one), and one loop catches the desired sets up from the ``Source``, feeds
the queued requests, and writes whatever the sender returns. A changed resource of a
``per_resource`` type marks only that resource stale: it is re-read alone (``load_one``) and patched
into the set (one change among 10,000 Dataplanes: one store read, not a reload of all). Other
changes mark whole types dirty (``load``), as do more than ``MAX_STALE`` stale resources of one type
(one list beats that many reads). What is marked before a read starts is in what it reads, and
what changes after is marked again, so the sets always catch up with the store.

``run_receiver`` owns a ``Receiver``: it subscribes, then for each response applies the decoded
batch through a ``StoreSink`` and answers ACK, or NACK with the reasons (unreadable resources, or a
store error).

Both return when the peer ends the stream, raise ``PeerProtocolError`` when the peer breaks the
protocol, and let transport errors (``grpc.aio.AioRpcError``) through: the caller decides whether to
reconnect (zone) or end the stream (global). A stream is anything with ``read()`` (returning
``grpc.aio.EOF`` at the end) and ``write(message)``: a server context or a client call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

import grpc

from atoll.errors import AtollError
from atoll.kds.flows import Source, ZoneToGlobalSource
from atoll.kds.protocol import Batch, Receiver, RequestSeen, Sender
from atoll.kds.reconcile import StoreSink
from atoll.kds.wire import wire_name
from atoll.resources.meta import Resource
from atoll.store.protocol import Store
from atoll.xds.pump import StreamPump

log = logging.getLogger(__name__)


class MessageStream(Protocol):
    async def read(self) -> Any: ...

    async def write(self, message: Any) -> None: ...


MAX_STALE = 100
"""More stale resources of one type than this reload the type instead of reading each one."""

OnRequest = Callable[[RequestSeen], None]
OnBatch = Callable[[Batch, list[str]], None]


class _Changes:
    """What the desired sets must catch up with: whole types to reload (``dirty``) and single resources
    of per-resource types to re-read (``stale``). Marks are set by the store watch and the insight poll,
    and taken by ``catch_up``."""

    def __init__(self, source: Source, wake: asyncio.Event, label: str) -> None:
        self.source = source
        self.wake = wake
        self.label = label
        self.dirty: set[str] = set(source.types)
        self.stale: dict[str, set[tuple[str, str | None]]] = {}  # per-resource type -> (name, mesh)

    async def follow(self, sub: Any) -> None:
        """Mark what the store's changes affect (coalescing the events already queued)."""
        source = self.source
        async for ev in sub:
            events = [ev]
            while sub.pending():
                events.append(await sub.__anext__())
            kinds = set()
            for e in events:
                r = e.resource
                kinds.add(r.type)
                if source.per_resource(r.type):
                    self.stale.setdefault(r.type, set()).add((r.name, r.mesh))
            for kind in kinds:  # reload what a change affects, except a per-resource type's own set
                self.dirty.update(t for t in source.affected({kind}) if t != kind or not source.per_resource(kind))
            if self.dirty or self.stale:
                self.wake.set()

    async def poll_insights(self, source: ZoneToGlobalSource, interval: float) -> None:
        while True:
            try:
                if source.poll_insights():
                    self.dirty.add(source.types[-1])
                    self.wake.set()
            except Exception:
                log.exception("%s: reading the proxy inventory failed", self.label)
            await asyncio.sleep(interval)

    async def catch_up(self, sender: Sender) -> None:
        """Load what is marked into ``sender``'s desired sets, until nothing is marked."""
        dirty, stale, source = self.dirty, self.stale, self.source
        while dirty or stale:
            if dirty:
                type = dirty.pop()
                stale.pop(type, None)  # the reload reads those too
                sender.set_desired(type, await source.load(type))
                continue
            type, keys = stale.popitem()
            if len(keys) > MAX_STALE:
                dirty.add(type)
                continue
            put: list[Resource[Any]] = []
            remove: list[str] = []
            for name, mesh in keys:
                r = await source.load_one(type, name, mesh)
                if r is None:
                    remove.append(wire_name(name, mesh))
                else:
                    put.append(r)
            sender.patch_desired(type, put, remove)


async def run_sender(
    stream: MessageStream,
    sender: Sender,
    source: Source,
    store: Store,
    *,
    on_request: OnRequest | None = None,
    insight_interval: float = 0.5,
    label: str = "kds",
) -> None:
    """Serve ``sender`` on ``stream`` until the peer ends it (see the module docstring)."""
    sub = store.watch()  # before the first load: no change is missed
    try:
        async with StreamPump(stream.read, name=label) as pump:
            changes = _Changes(source, pump.wake, label)
            pump.spawn(changes.follow(sub), f"{label}-watch")
            if isinstance(source, ZoneToGlobalSource):
                pump.spawn(changes.poll_insights(source, insight_interval), f"{label}-insights")
            while True:
                await pump.wake.wait()
                pump.wake.clear()
                error = pump.helper_error()
                if error is not None:
                    raise AtollError(f"{label}: watching changes failed: {error}")
                await changes.catch_up(sender)
                while pump.inbox:
                    seen = sender.receive(pump.inbox.popleft())
                    if seen.error is not None:
                        log.warning("%s: peer refused %s: %s", label, seen.type, seen.error)
                    if on_request is not None:
                        on_request(seen)
                for response in sender.responses():
                    await stream.write(response)
                if pump.ended and not pump.inbox:
                    if pump.error is not None:
                        raise pump.error
                    return
    finally:
        sub.close()


async def run_receiver(
    stream: MessageStream,
    receiver: Receiver,
    sink: StoreSink,
    *,
    on_batch: OnBatch | None = None,
    label: str = "kds",
) -> None:
    """Subscribe, then apply every response and ACK/NACK it, until the peer ends the stream."""
    for request in receiver.subscriptions():
        await stream.write(request)
    while True:
        msg = await stream.read()
        if msg is grpc.aio.EOF:
            return
        batch = receiver.receive(msg)
        errors = list(batch.errors)
        try:
            await sink.apply(batch)
        except AtollError as e:
            errors.append(f"cannot apply {batch.type}: {e}")
        except Exception as e:  # a local bug must not end the sync: say so and NACK
            log.exception("%s: applying %s failed", label, batch.type)
            errors.append(f"cannot apply {batch.type}: internal error {type(e).__name__}")
        if on_batch is not None:
            on_batch(batch, errors)
        if errors:
            message = "; ".join(errors)
            log.warning("%s: refusing part of %s: %s", label, batch.type, message)
            await stream.write(receiver.nack(batch, message))
        else:
            await stream.write(receiver.ack(batch))
