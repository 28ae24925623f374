"""The grpc.aio ADS servicer: a thin pump between a gRPC stream and a sans-I/O state machine.

Per stream (SotW or delta) there is one reader task and one writer loop (the handler coroutine itself),
on an ``atoll.xds.pump.StreamPump``, both on the event loop, sharing the state machine (whose calls are
synchronous, so they never interleave). Once the machine exists the reader feeds each request to it
itself, queueing whatever it answers; the writer wakes on the pump's event — set when the reader queued a
response or the ``SnapshotCache`` watcher saw a new snapshot — feeds the newest snapshot to the machine,
and writes the queue in order. An ACK thus costs one task wake-up, not two. Requests that arrive before
the first one has opened the stream (node, hooks) wait in the pump's inbox until the machine exists.
Responses go out as bytes spliced from the resources' shared serialization (the method handlers pass
bytes through), so nothing is re-serialized per stream. ``_AdsStream`` holds one stream's state.

The first request must carry the node (``set_node_on_first_message_only``); it is kept per stream. Hooks
are injected: ``on_stream_open(node, metadata)`` may raise ``StreamRejected(code, message)`` to refuse the
stream (authentication, registration), ``on_stream_close(node_id, stream_id)`` and
``on_status(node_id, StreamStatus)`` (after every batch that sent, ACKed or NACKed). A malformed request
ends only its own stream, with INVALID_ARGUMENT and a message naming the problem.

Before a stream is authenticated it is bounded (``atoll.xds.peers.PeerGate``, and the first-request checks
of ``atoll.xds.server.admission``): its first request must come within ``first_message_timeout`` seconds
(else ``DEADLINE_EXCEEDED``) and be at most ``MAX_FIRST_MESSAGE_BYTES`` (else ``RESOURCE_EXHAUSTED``), a
peer address may have only so many such streams at once (``RESOURCE_EXHAUSTED``), and a refused request
is dropped at once (the node is copied out of it and the request leaves the inbox before the open hook
runs). Once open, a stream costs the gate nothing. ``withhold_secrets(peer)``, when given, is asked once
per stream: a stream it answers true for (plaintext ADS from a remote peer) gets its snapshots without
SDS secrets (``admission.without_secrets``); its mTLS clusters and listeners stay warming.

``make_server`` builds the ``grpc.aio.Server`` with the options measured to matter for many streams (BDP
probing off, a raised pending-request limit, keepalive) and the bounds that protect the process from
peers that never authenticate (message and metadata sizes, a handshake deadline, idle connections).
Calling ``gc.freeze()`` after start-up is left to the control plane.
"""

from __future__ import annotations

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
from atoll.xds.peers import PeerGate
from atoll.xds.pump import StreamPump
from atoll.xds.server.admission import await_first_request, first_node, without_secrets
from atoll.xds.server.cache import SnapshotCache
from atoll.xds.server.protocol import (
    DeltaResponse,
    DeltaStream,
    SotwResponse,
    SotwStream,
    XdsError,
)
from atoll.xds.server.snapshot import Snapshot
from atoll.xds.server.status import StreamStatus

log = logging.getLogger(__name__)

SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"

Metadata = Mapping[str, str | bytes]
OnStreamOpen = Callable[[base_pb2.Node, Metadata], Awaitable[None] | None]
OnStreamClose = Callable[[str, int], None]
OnStatus = Callable[[str, StreamStatus], None]
WithholdSecrets = Callable[[str], bool]


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
        gate: PeerGate | None = None,
        withhold_secrets: WithholdSecrets | None = None,
    ) -> None:
        self._cache = cache
        self.gate = gate or PeerGate()
        self._withhold_secrets = withhold_secrets
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
        peer = context.peer()
        if not self.gate.admit(peer):
            log.warning("ADS stream %d refused: too many unauthenticated streams from %s", stream_id, peer)
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "too many streams from this address waiting to authenticate"
            )
            return
        pump = StreamPump(context.read, name=f"ads-{stream_id}")
        stream = _AdsStream(self, context, pump, stream_id, peer)
        async with pump:
            # The RPC ended (peer cancelled, connection lost): do not wait for read() to notice.
            context.add_done_callback(lambda _: pump.end())
            try:
                await stream.serve(machine_type)
            finally:
                # Bookkeeping before the pump awaits its reader, with no await before it: gRPC may cancel
                # this handler again while it cleans up, and that must not leave the stream counted open.
                stream.close()

    async def _open(self, node: base_pb2.Node, context: grpc.aio.ServicerContext) -> None:
        """Run ``on_stream_open``; a refusal or a failing hook aborts the RPC."""
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


_LOCAL_ERROR = (grpc.StatusCode.INTERNAL, "control plane error while serving this stream")


class _AdsStream:
    """One ADS stream on its ``StreamPump``: the machine, the responses owed, the status last reported.

    Once the machine exists the reader task calls ``handle`` for each request (its answers are queued and
    wake the writer only if there are any); ``serve`` is the writer loop."""

    __slots__ = (
        "context",
        "failure",
        "machine",
        "newest",
        "node_id",
        "outbox",
        "peer",
        "pending",
        "pump",
        "reported",
        "servicer",
        "stream_id",
        "unwatch",
        "withhold",
    )

    def __init__(
        self,
        servicer: AdsServicer,
        context: grpc.aio.ServicerContext,
        pump: StreamPump,
        stream_id: int,
        peer: str,
    ) -> None:
        self.servicer = servicer
        self.peer = peer
        self.pending = True  # counted by the servicer's PeerGate until the open hook accepted it
        self.withhold = False  # SDS secrets are never sent on this stream
        self.context = context
        self.pump = pump
        self.stream_id = stream_id
        self.machine: SotwStream | DeltaStream | None = None
        self.node_id: str | None = None
        self.outbox: deque[SotwResponse | DeltaResponse] = deque()  # in the order the machine produced them
        self.newest: Snapshot | None = None  # the latest snapshot the cache announced, not yet fed
        self.failure: tuple[grpc.StatusCode, str] | None = None  # the machine refused a request, or failed
        # The status serial last reported (report once after the first batch, even if it sent nothing:
        # a resumed delta stream).
        self.reported = -1
        self.unwatch: Callable[[], None] | None = None

    def report(self) -> None:
        on_status = self.servicer._on_status
        if self.machine is None or self.node_id is None or on_status is None:
            return
        if self.machine.status_serial != self.reported:
            self.reported = self.machine.status_serial
            try:
                on_status(self.node_id, self.machine.status())
            except Exception:
                log.exception("on_status hook failed for %s", self.node_id)

    def feed(self, request: Any) -> None:
        """One request into the machine; what it answers is queued for the writer."""
        assert self.machine is not None
        try:
            out = self.machine.receive(request)
        except PeerProtocolError as e:
            log.warning("ADS stream %d of %s: %s", self.stream_id, self.node_id, e)
            self.fail((grpc.StatusCode.INVALID_ARGUMENT, str(e)))
            return
        except Exception:  # a bug on our side: end this stream only, say whose fault it is
            log.exception("ADS stream %d of %s: local error", self.stream_id, self.node_id)
            self.fail(_LOCAL_ERROR)
            return
        if out:
            self.outbox.extend(out)
            self.pump.wake.set()

    def handle(self, request: Any) -> None:
        """The reader's path for a request: an ACK, the commonest, wakes no writer."""
        self.feed(request)
        self.report()

    def fail(self, failure: tuple[grpc.StatusCode, str]) -> None:
        if self.failure is None:
            self.failure = failure
        self.pump.end()  # read no more; the writer aborts the RPC with the failure

    def on_snapshot(self, snapshot: Snapshot) -> None:
        self.newest = without_secrets(snapshot) if self.withhold else snapshot
        self.pump.wake.set()

    def admitted(self) -> None:
        """The stream is authenticated (or ended): it no longer counts against its peer."""
        if self.pending:
            self.pending = False
            self.servicer.gate.release(self.peer)

    async def serve(self, machine_type: type[SotwStream] | type[DeltaStream]) -> None:
        pump = self.pump
        timeout = self.servicer.gate.first_message_timeout
        if not await await_first_request(pump, timeout):
            log.info("ADS stream %d from %s sent nothing within %gs: closed", self.stream_id, self.peer, timeout)
            await self.context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"no request within {timeout:g}s")
        if pump.inbox:
            if not await self._open(machine_type):
                return
            await self._write_loop()
            if self.failure is not None:
                return
        if pump.error is not None:
            log.warning("ADS stream %d of %s: cannot read request: %r", self.stream_id, self.node_id, pump.error)
            await self.context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot read request: {pump.error}")

    async def _open(self, machine_type: type[SotwStream] | type[DeltaStream]) -> bool:
        """Node from the first request, the open hook, the machine and the cache watch."""
        node = first_node(self.pump.inbox[0], stream_id=self.stream_id, peer=self.peer)
        if isinstance(node, tuple):
            self.failure = node
            self.pump.inbox.clear()  # the refused request goes now, not at the next full collection
            await self.context.abort(*node)
            return False
        servicer = self.servicer
        await servicer._open(node, self.context)
        self.admitted()
        node_id = self.node_id = str(node.id)
        if servicer._withhold_secrets is not None and servicer._withhold_secrets(self.peer):
            self.withhold = True
            log.warning(
                "ADS stream %d of %s from %s is plaintext from a remote peer: SDS secrets are withheld "
                "(serve ADS with TLS: --xds-tls on)",
                self.stream_id,
                node_id,
                self.peer,
            )
        machine = self.machine = machine_type(node_id, self.stream_id, clock=servicer._clock)
        servicer._streams[self.stream_id] = machine
        self.unwatch = servicer._cache.watch(node_id, self.on_snapshot)
        current = servicer._cache.get(node_id)
        if current is not None:  # nothing requested yet: only remembered
            machine.set_snapshot(without_secrets(current) if self.withhold else current)
        self.pump.handler = self.handle
        return True

    async def _write_loop(self) -> None:
        """Queued requests, then the newest snapshot, then write what they produced, until the end."""
        pump, context, outbox, machine = self.pump, self.context, self.outbox, self.machine
        assert machine is not None
        inbox, wake = pump.inbox, pump.wake
        while True:
            wake.clear()
            while inbox and self.failure is None:
                self.feed(inbox.popleft())
            if self.newest is not None and self.failure is None:
                snapshot, self.newest = self.newest, None
                try:
                    outbox.extend(machine.set_snapshot(snapshot))
                except Exception:
                    log.exception("ADS stream %d of %s: local error", self.stream_id, self.node_id)
                    self.fail(_LOCAL_ERROR)
            if self.failure is not None:
                await context.abort(*self.failure)
                return
            while outbox:
                await context.write(outbox.popleft().to_bytes())
            self.report()
            if not inbox and self.newest is None and not outbox:
                if pump.ended:
                    return
                await wake.wait()

    def close(self) -> None:
        """Stop watching, forget the stream, run the close hook (synchronous: see ``AdsServicer._serve``)."""
        self.admitted()
        self.pump.inbox.clear()
        if self.unwatch is not None:
            self.unwatch()
        self.servicer._streams.pop(self.stream_id, None)
        on_close, node_id = self.servicer._on_close, self.node_id
        if node_id is not None and on_close is not None:
            try:
                on_close(node_id, self.stream_id)
            except Exception:
                log.exception("on_stream_close hook failed for %s", node_id)


#: Server options that matter for thousands of ADS streams (see notes/python-grpc-fanout.md), and the
#: bounds on what any peer, authenticated or not, can make the process hold: 4 MB per message (an ACK
#: of 100 clusters is ~4 KB), 16 KB of metadata at most (a token is ~1 KB), 10 s to finish the TLS and HTTP/2
#: handshakes, and connections without a stream closed after 5 minutes.
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
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.max_send_message_length", -1),
    ("grpc.max_metadata_size", 8 * 1024),
    ("grpc.absolute_max_metadata_size", 16 * 1024),
    ("grpc.server_handshake_timeout_ms", 10_000),
    ("grpc.max_connection_idle_ms", 300_000),
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
    "WithholdSecrets",
    "make_server",
]
