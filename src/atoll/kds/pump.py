"""Thin pumps between one gRPC stream and a sans-I/O machine; the same code runs on both CPs.

``run_sender`` owns a ``Sender``: a reader task queues the peer's requests, a store watch marks
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
import contextlib
import logging
from collections import deque
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

log = logging.getLogger(__name__)


class MessageStream(Protocol):
    async def read(self) -> Any: ...

    async def write(self, message: Any) -> None: ...


MAX_STALE = 100
"""More stale resources of one type than this reload the type instead of reading each one."""

OnRequest = Callable[[RequestSeen], None]
OnBatch = Callable[[Batch, list[str]], None]


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
    wake = asyncio.Event()
    inbox: deque[Any] = deque()
    dirty: set[str] = set(source.types)
    stale: dict[str, set[tuple[str, str | None]]] = {}  # per-resource type -> (name, mesh) to re-read
    ended: list[BaseException | None] = []

    async def read_loop() -> None:
        try:
            while True:
                msg = await stream.read()
                if msg is grpc.aio.EOF:
                    ended.append(None)
                    return
                inbox.append(msg)
                wake.set()
        except asyncio.CancelledError:
            ended.append(None)
            raise
        except Exception as e:
            ended.append(e)
        finally:
            wake.set()

    async def watch_loop(sub: Any) -> None:
        async for ev in sub:
            events = [ev]
            while sub.pending():  # coalesce what is already queued
                events.append(await sub.__anext__())
            kinds = set()
            for e in events:
                r = e.resource
                kinds.add(r.type)
                if source.per_resource(r.type):
                    stale.setdefault(r.type, set()).add((r.name, r.mesh))
            for kind in kinds:  # reload what a change affects, except a per-resource type's own set
                dirty.update(t for t in source.affected({kind}) if t != kind or not source.per_resource(kind))
            if dirty or stale:
                wake.set()

    async def insight_loop(src: ZoneToGlobalSource) -> None:
        while True:
            try:
                if src.poll_insights():
                    dirty.add(src.types[-1])
                    wake.set()
            except Exception:
                log.exception("%s: reading the proxy inventory failed", label)
            await asyncio.sleep(insight_interval)

    sub = store.watch()  # before the first load: no change is missed
    tasks = [
        asyncio.create_task(read_loop(), name=f"{label}-read"),
        asyncio.create_task(watch_loop(sub), name=f"{label}-watch"),
    ]
    if isinstance(source, ZoneToGlobalSource):
        tasks.append(asyncio.create_task(insight_loop(source), name=f"{label}-insights"))
    try:
        while True:
            await wake.wait()
            wake.clear()
            for t in tasks[1:]:
                if t.done() and not t.cancelled() and t.exception() is not None:
                    raise AtollError(f"{label}: watching changes failed: {t.exception()}")
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
            while inbox:
                seen = sender.receive(inbox.popleft())
                if seen.error is not None:
                    log.warning("%s: peer refused %s: %s", label, seen.type, seen.error)
                if on_request is not None:
                    on_request(seen)
            for response in sender.responses():
                await stream.write(response)
            if ended and not inbox:
                if ended[0] is not None:
                    raise ended[0]
                return
    finally:
        sub.close()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


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
