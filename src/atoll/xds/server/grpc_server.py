"""The grpc.aio ADS servicer: a thin pump between a gRPC stream and a sans-I/O state machine.

Per stream (SotW or delta) there is one reader task and one writer loop (the handler coroutine itself),
both on the event loop, sharing the state machine (whose calls are synchronous, so they never
interleave). The reader does ``context.read()`` and feeds each request to the machine itself, queueing
whatever it answers; the writer wakes on an ``asyncio.Event`` — set when the reader queued a response or
the ``SnapshotCache`` watcher saw a new snapshot — feeds the newest snapshot to the machine, and writes the
queue in order. An ACK thus costs one task wake-up, not two. Requests that arrive before the first one has
opened the stream (node, hooks) wait in a deque until the machine exists. Responses go out as bytes spliced from the
resources' shared serialization (the method handlers pass bytes through), so nothing is re-serialized per
stream.

The first request must carry the node (``set_node_on_first_message_only``); it is kept per stream. Hooks
are injected: ``on_stream_open(node, metadata)`` may raise ``StreamRejected(code, message)`` to refuse the
stream (authentication, registration), ``on_stream_close(node_id, stream_id)`` and
``on_status(node_id, StreamStatus)`` (after every batch that sent, ACKed or NACKed). A malformed request
ends only its own stream, with INVALID_ARGUMENT and a message naming the problem.

``make_server`` builds the ``grpc.aio.Server`` with the options measured to matter for many streams (BDP
probing off, a raised pending-request limit, keepalive). Calling ``gc.freeze()`` after start-up is left to
the control plane.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf.message import Message

from atoll.errors import PeerProtocolError
from atoll.xds.server.cache import SnapshotCache
from atoll.xds.server.protocol import (
    DeltaStream,
    SotwStream,
    XdsError,
    node_of_first_request,
)
from atoll.xds.server.snapshot import Snapshot
from atoll.xds.server.status import StreamStatus

log = logging.getLogger(__name__)

SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"

Metadata = Mapping[str, str | bytes]
OnStreamOpen = Callable[[base_pb2.Node, Metadata], Awaitable[None] | None]
OnStreamClose = Callable[[str, int], None]
OnStatus = Callable[[str, StreamStatus], None]


class StreamRejected(XdsError):
    """Raised by ``on_stream_open`` to refuse a stream; the peer gets ``code`` and ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code.name}: {message}")


def _serialize(response: bytes | Message) -> bytes:
    if isinstance(response, bytes):
        return response
    data: bytes = response.SerializeToString()
    return data


class AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """Serves SotW and delta ADS from a ``SnapshotCache``. Register with ``add_to_server``."""

    def __init__(
        self,
        cache: SnapshotCache,
        *,
        on_stream_open: OnStreamOpen | None = None,
        on_stream_close: OnStreamClose | None = None,
        on_status: OnStatus | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cache = cache
        self._on_open = on_stream_open
        self._on_close = on_stream_close
        self._on_status = on_status
        self._clock = clock
        self._ids = itertools.count(1)
        self._streams: dict[int, SotwStream | DeltaStream] = {}

    def add_to_server(self, server: grpc.aio.Server) -> None:
        """Register both ADS methods; responses are passed through as pre-built bytes."""
        handlers = {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                self.StreamAggregatedResources,
                request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                response_serializer=_serialize,
            ),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                self.DeltaAggregatedResources,
                request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                response_serializer=_serialize,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    def statuses(self) -> list[StreamStatus]:
        """A frozen status of every open stream (for the inventory)."""
        return [m.status() for m in self._streams.values()]

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    async def StreamAggregatedResources(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        await self._serve(context, SotwStream)

    async def DeltaAggregatedResources(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        await self._serve(context, DeltaStream)

    async def _serve(
        self, context: grpc.aio.ServicerContext, machine_type: type[SotwStream] | type[DeltaStream]
    ) -> None:
        stream_id = next(self._ids)
        wake = asyncio.Event()
        inbox: deque[Any] = deque()  # requests read before the machine exists
        outbox: deque[Any] = deque()  # responses, in the order the machine produced them
        ended: list[BaseException | None] = []  # set once the reader stops: [None] on EOF, [error] else
        failed: list[tuple[grpc.StatusCode, str]] = []  # the machine refused a request, or failed
        machine: SotwStream | DeltaStream | None = None
        node_id: str | None = None
        reported = [-1]  # the status serial last reported (report once after the first batch, even if
        # it sent nothing: a resumed delta stream)

        def report() -> None:
            if machine is None or node_id is None or self._on_status is None:
                return
            if machine.status_serial != reported[0]:
                reported[0] = machine.status_serial
                try:
                    self._on_status(node_id, machine.status())
                except Exception:
                    log.exception("on_status hook failed for %s", node_id)

        def feed(request: Any) -> None:
            """One request into the machine; what it answers is queued for the writer."""
            assert machine is not None
            try:
                out = machine.receive(request)
            except PeerProtocolError as e:
                log.warning("ADS stream %d of %s: %s", stream_id, node_id, e)
                failed.append((grpc.StatusCode.INVALID_ARGUMENT, str(e)))
                wake.set()
                return
            except Exception:  # a bug on our side: end this stream only, say whose fault it is
                log.exception("ADS stream %d of %s: local error", stream_id, node_id)
                failed.append((grpc.StatusCode.INTERNAL, "control plane error while serving this stream"))
                wake.set()
                return
            if out:
                outbox.extend(out)
                wake.set()

        async def read_loop() -> None:
            # Requests are fed to the machine right here once it exists: an ACK, the commonest request,
            # then costs no wake-up of the writer (it only wakes when there is something to write).
            try:
                while not failed:
                    request = await context.read()
                    if request is grpc.aio.EOF:
                        ended.append(None)
                        break
                    if machine is None or inbox:
                        inbox.append(request)
                        wake.set()
                    else:
                        feed(request)
                        report()
            except asyncio.CancelledError:
                ended.append(None)
                raise
            except Exception as e:  # the peer went away or sent undecodable bytes
                ended.append(e)
            finally:
                wake.set()

        reader = asyncio.create_task(read_loop(), name=f"ads-read-{stream_id}")

        def on_done(_: object) -> None:
            # The RPC ended (peer cancelled, connection lost): do not wait for read() to notice.
            if not ended:
                ended.append(None)
            wake.set()

        context.add_done_callback(on_done)
        newest: list[Snapshot] = []
        unwatch: Callable[[], None] | None = None
        try:
            while not inbox and not ended:
                wake.clear()
                await wake.wait()
            if not inbox:
                await self._end_on_read_error(context, stream_id, node_id, ended)
                return
            try:
                node = node_of_first_request(inbox[0])
            except PeerProtocolError as e:
                log.warning("ADS stream %d: %s", stream_id, e)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
                return
            await self._open(node, context)
            node_id = str(node.id)
            machine = machine_type(node_id, stream_id, clock=self._clock)
            self._streams[stream_id] = machine

            def on_snapshot(snapshot: Snapshot) -> None:
                newest[:] = [snapshot]
                wake.set()

            unwatch = self._cache.watch(node_id, on_snapshot)
            current = self._cache.get(node_id)
            if current is not None:
                machine.set_snapshot(current)  # nothing requested yet: only remembered
            while True:
                wake.clear()
                while inbox and not failed:
                    feed(inbox.popleft())
                if newest and not failed:
                    try:
                        outbox.extend(machine.set_snapshot(newest.pop()))
                    except Exception:
                        log.exception("ADS stream %d of %s: local error", stream_id, node_id)
                        failed.append((grpc.StatusCode.INTERNAL, "control plane error while serving this stream"))
                if failed:
                    await context.abort(*failed[0])
                    return
                while outbox:
                    await context.write(outbox.popleft().to_bytes())
                report()
                if ended and not inbox and not newest and not outbox:
                    break
                if not inbox and not newest and not outbox and not failed:
                    await wake.wait()
            await self._end_on_read_error(context, stream_id, node_id, ended)
        finally:
            # Bookkeeping first, with no await before it: gRPC may cancel this handler again while it
            # cleans up, and an interrupted await here must not leave the stream counted as open.
            reader.cancel()
            if unwatch is not None:
                unwatch()
            self._streams.pop(stream_id, None)
            if node_id is not None and self._on_close is not None:
                try:
                    self._on_close(node_id, stream_id)
                except Exception:
                    log.exception("on_stream_close hook failed for %s", node_id)
            await asyncio.wait([reader])

    @staticmethod
    async def _end_on_read_error(
        context: grpc.aio.ServicerContext, stream_id: int, node_id: str | None, ended: list[BaseException | None]
    ) -> None:
        error = ended[0] if ended else None
        if error is not None:
            log.warning("ADS stream %d of %s: cannot read request: %r", stream_id, node_id, error)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot read request: {error}")

    async def _open(self, node: base_pb2.Node, context: grpc.aio.ServicerContext) -> None:
        if self._on_open is None:
            return
        metadata: dict[str, str | bytes] = {k: v for k, v in (context.invocation_metadata() or ())}
        try:
            result = self._on_open(node, metadata)
            if inspect.isawaitable(result):
                await result
        except StreamRejected as e:
            log.info("ADS stream of %s rejected: %s", node.id, e)
            await context.abort(e.code, e.message)
        except Exception:
            log.exception("on_stream_open hook failed for %s", node.id)
            await context.abort(grpc.StatusCode.INTERNAL, "the control plane failed to open this stream")


#: Server options that matter for thousands of ADS streams (see notes/python-grpc-fanout.md).
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.http2.bdp_probe", 0),
    ("grpc.server.max_pending_requests", 20_000),
    ("grpc.server.max_pending_requests_hard_limit", 40_000),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", -1),
)


def make_server(
    servicer: AdsServicer,
    port: int,
    host: str = "0.0.0.0",
    *,
    credentials: grpc.ServerCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Server:
    """A ``grpc.aio.Server`` serving ``servicer`` on ``host:port`` (not started: ``await server.start()``).

    ``options`` are added after (and so override) ``SERVER_OPTIONS``.
    """
    server = grpc.aio.server(options=[*SERVER_OPTIONS, *options])
    servicer.add_to_server(server)
    address = f"{host}:{port}"
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if not bound or (port and bound != port):
        raise OSError(f"cannot listen for ADS on {address}")
    return server


__all__ = [
    "SERVER_OPTIONS",
    "AdsServicer",
    "Metadata",
    "OnStatus",
    "OnStreamClose",
    "OnStreamOpen",
    "StreamRejected",
    "make_server",
]
