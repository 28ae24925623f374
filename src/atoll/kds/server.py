"""Global's side of KDS: the ``atoll.kds.v1.KDS`` gRPC service, the registry of connected zones,
and the inventory providers the REST API uses.

Each stream is opened by a zone with metadata ``atoll-zone`` (its name), ``atoll-instance`` (the id
of that zone CP process), ``atoll-version`` and ``authorization: Bearer <zone token>``. Before any
message flows the servicer (1) checks the metadata, (2) awaits the injected ``authenticate(zone,
token)`` — it raises to refuse, with the reason (``UNAUTHENTICATED``), (3) claims the zone in the
``ZoneRegistry`` (``atoll.kds.zones``) — a zone already connected from another instance is refused
(``ALREADY_EXISTS``, naming the instance holding it); the same instance reconnecting is accepted — and
(4) creates the ``Zone`` resource the first time a zone connects. Then:

- ``GlobalToZoneSync``: global is the ``Sender`` of ``GlobalToZoneSource(zone)``;
- ``ZoneToGlobalSync``: global is the ``Receiver``; batches go through a ``StoreSink`` whose copies
  are renamed with ``hashed_name`` and labelled with the *authenticated* zone (whatever the zone
  claims in its resources).

A peer that breaks the protocol gets ``INVALID_ARGUMENT`` on that stream only; a local bug
``INTERNAL``; neither touches other streams. So does a stream whose first message does not come within
``first_message_timeout`` seconds of its acceptance (the zone's first request on ``GlobalToZoneSync``,
its first response on ``ZoneToGlobalSync``), and authentication has as long to answer.

``GlobalKds`` is the supervisor component (structurally a ``cp.components.Component``): it runs the
gRPC server (TLS when given credentials) and ``GlobalInventory``, a cache of the synced
``DataplaneInsight``s that backs ``dataplanes+insights`` (sync lookups) and ``zones+insights``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from atoll.errors import AlreadyExists, AtollError, PeerProtocolError
from atoll.kds.flows import GlobalToZoneSource, list_all, zone_to_global_types
from atoll.kds.names import ORIGIN, ORIGIN_ZONE, ZONE, from_zone, hashed_name, zone_of
from atoll.kds.protocol import Batch, Receiver, Reply, RequestSeen, Sender
from atoll.kds.pump import run_receiver, run_sender
from atoll.kds.reconcile import StoreSink
from atoll.kds.zones import ZoneRegistry, ZoneRejected, ZoneSession
from atoll.resources.base import check_name
from atoll.resources.codec import decode
from atoll.resources.meta import Resource
from atoll.resources.models.dataplane_insight import DATAPLANE_INSIGHT
from atoll.store.protocol import EventKind, ListFilter, Store

log = logging.getLogger(__name__)

SERVICE = "atoll.kds.v1.KDS"
GLOBAL_TO_ZONE = "GlobalToZoneSync"
ZONE_TO_GLOBAL = "ZoneToGlobalSync"
MD_ZONE = "atoll-zone"
MD_INSTANCE = "atoll-instance"
MD_VERSION = "atoll-version"
MD_AUTHORIZATION = "authorization"
MD_ACCEPTED = "atoll-accepted"  # initial metadata global sends once it accepted the stream

Authenticate = Callable[[str, str], Awaitable[None]]
"""``authenticate(zone, token)``: returns if the token may act as ``zone``; raises with the reason."""

#: A zone authenticates with its stream's metadata, before any message is read, so an unauthenticated
#: peer can make global hold at most its metadata (16 KB) per stream; a peer that does not finish the TLS
#: and HTTP/2 handshakes within 10 s, or keeps a connection without a stream for 5 minutes, is dropped.
#: Messages stay large (64 MB): a zone sends all its insights in one batch. Global pings each zone every
#: 5 s and drops one that does not answer within 5 s: a zone leader cut off by a partition (no RST ever
#: comes) releases its zone within ~10 s, so the zone's next leader is accepted (HA zones).
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.http2.bdp_probe", 0),
    ("grpc.max_metadata_size", 8 * 1024),
    ("grpc.absolute_max_metadata_size", 16 * 1024),
    ("grpc.server_handshake_timeout_ms", 10_000),
    ("grpc.max_connection_idle_ms", 300_000),
    ("grpc.keepalive_time_ms", 5_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)


def _iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, UTC).isoformat() if t is not None else None


class KdsServicer:
    """The two KDS methods (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        registry: ZoneRegistry,
        authenticate: Authenticate,
        *,
        sink_hook: Callable[[str, Batch], None] | None = None,
        first_message_timeout: float = 10.0,
    ) -> None:
        self.first_message_timeout = first_message_timeout
        self.store = store
        self.registry = registry
        self._authenticate = authenticate
        self._sink_hook = sink_hook

    def add_to_server(self, server: grpc.aio.Server) -> None:
        handlers = {
            GLOBAL_TO_ZONE: grpc.stream_stream_rpc_method_handler(
                self.GlobalToZoneSync,
                request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                response_serializer=discovery_pb2.DeltaDiscoveryResponse.SerializeToString,
            ),
            ZONE_TO_GLOBAL: grpc.stream_stream_rpc_method_handler(
                self.ZoneToGlobalSync,
                request_deserializer=discovery_pb2.DeltaDiscoveryResponse.FromString,
                response_serializer=discovery_pb2.DeltaDiscoveryRequest.SerializeToString,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    async def _open(self, context: grpc.aio.ServicerContext) -> ZoneSession:
        md: Mapping[str, Any] = {k: v for k, v in (context.invocation_metadata() or ())}
        zone = str(md.get(MD_ZONE, ""))
        instance = str(md.get(MD_INSTANCE, ""))
        version = str(md.get(MD_VERSION, ""))
        auth = str(md.get(MD_AUTHORIZATION, ""))
        if not zone:
            raise ZoneRejected(grpc.StatusCode.INVALID_ARGUMENT, f"metadata {MD_ZONE} (the zone name) is required")
        try:
            check_name(zone)
        except ValueError as e:
            raise ZoneRejected(grpc.StatusCode.INVALID_ARGUMENT, f"metadata {MD_ZONE}: {e}") from None
        if not instance:
            raise ZoneRejected(
                grpc.StatusCode.INVALID_ARGUMENT, f"metadata {MD_INSTANCE} (the CP instance id) is required"
            )
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
        if not token:
            raise ZoneRejected(grpc.StatusCode.UNAUTHENTICATED, f'zone "{zone}": no zone token (authorization: Bearer)')
        try:
            async with asyncio.timeout(self.first_message_timeout):
                await self._authenticate(zone, token)
        except Exception as e:
            raise ZoneRejected(grpc.StatusCode.UNAUTHENTICATED, f'zone "{zone}": zone token refused: {e}') from None
        session = self.registry.claim(zone, instance, version)
        try:
            await self._ensure_zone(zone)
        except BaseException:
            self.registry.release(session)
            raise
        return session

    async def _ensure_zone(self, zone: str) -> None:
        with contextlib.suppress(AlreadyExists):
            await self.store.create(decode({"type": "Zone", "name": zone, "enabled": True}))
            log.info("zone %s connected for the first time: Zone resource created", zone)

    async def _serve(
        self, context: grpc.aio.ServicerContext, method: str, body: Callable[[ZoneSession], Awaitable[None]]
    ) -> None:
        try:
            session = await self._open(context)
        except ZoneRejected as e:
            log.warning("KDS %s refused: %s", method, e.message)
            await context.abort(e.code, e.message)
            return
        log.info("zone %s (instance %s) opened %s", session.zone, session.instance, method)
        try:
            await context.send_initial_metadata(((MD_ACCEPTED, "1"),))
            await body(session)
        except PeerProtocolError as e:
            log.warning("zone %s broke the protocol on %s: %s", session.zone, method, e)
            session.last_error = str(e)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except grpc.aio.AbortError:
            raise
        except (grpc.aio.AioRpcError, ConnectionError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("KDS %s of zone %s: local error", method, session.zone)
            await context.abort(grpc.StatusCode.INTERNAL, "global control plane error while serving this stream")
        finally:
            self.registry.release(session)
            log.info("zone %s closed %s", session.zone, method)

    async def GlobalToZoneSync(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        async def body(session: ZoneSession) -> None:
            def on_request(seen: RequestSeen) -> None:
                if seen.reply is Reply.ACK:
                    session.last_global_to_zone = self.registry.now()
                elif seen.reply is Reply.NACK:
                    session.nacks += 1
                    session.last_error = seen.error

            source = GlobalToZoneSource(self.store, session.zone)
            await run_sender(
                _FirstReadDeadline(context, self.first_message_timeout),
                Sender(source.types),
                source,
                self.store,
                on_request=on_request,
                label=f"kds global->{session.zone}",
            )

        await self._serve(context, GLOBAL_TO_ZONE, body)

    async def ZoneToGlobalSync(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        async def body(session: ZoneSession) -> None:
            zone = session.zone
            sink = StoreSink(
                self.store,
                scope={ORIGIN: ORIGIN_ZONE, ZONE: zone},
                adopt=lambda r: from_zone(r, zone),
                local_name=lambda name, mesh: hashed_name(name, zone, mesh),
            )

            def on_batch(batch: Batch, errors: list[str]) -> None:
                session.last_zone_to_global = self.registry.now()
                if self._sink_hook is not None:
                    self._sink_hook(zone, batch)

            await run_receiver(
                _FirstReadDeadline(context, self.first_message_timeout),
                Receiver(zone_to_global_types()),
                sink,
                on_batch=on_batch,
                label=f"kds {zone}->global",
            )

        await self._serve(context, ZONE_TO_GLOBAL, body)


class _FirstReadDeadline:
    """A server context whose first ``read()`` must return within ``timeout`` seconds (else
    ``PeerProtocolError``); later reads and every write go straight to the context."""

    __slots__ = ("_context", "_first", "_timeout")

    def __init__(self, context: grpc.aio.ServicerContext, timeout: float) -> None:
        self._context = context
        self._timeout = timeout
        self._first = True

    async def read(self) -> Any:
        if not self._first:
            return await self._context.read()
        self._first = False
        try:
            async with asyncio.timeout(self._timeout):
                return await self._context.read()
        except TimeoutError:
            raise PeerProtocolError(f"no message within {self._timeout:g}s") from None

    async def write(self, message: Any) -> None:
        await self._context.write(message)


class GlobalInventory:
    """Synced ``DataplaneInsight``s in memory (for sync lookups) and the ``zones+insights`` items."""

    def __init__(self, store: Store, registry: ZoneRegistry) -> None:
        self.store = store
        self.registry = registry
        self._insights: dict[tuple[str, str], Resource[Any]] = {}
        self.loaded = asyncio.Event()
        self.zone_online: Callable[[str], bool] = registry.online
        """Whether a zone is connected; with several global instances (HA), to any of them."""

    async def run(self) -> None:
        """Load, then follow the store's changes until cancelled."""
        sub = self.store.watch()
        try:
            for r in await list_all(self.store, DATAPLANE_INSIGHT.name):
                self._insights[(r.mesh or "", r.name)] = r
            self.loaded.set()
            async for ev in sub:
                r = ev.resource
                if r.type != DATAPLANE_INSIGHT.name:
                    continue
                if ev.kind is EventKind.DELETED:
                    self._insights.pop((r.mesh or "", r.name), None)
                else:
                    self._insights[(r.mesh or "", r.name)] = r
        finally:
            sub.close()

    def insight(self, mesh: str, name: str) -> dict[str, Any] | None:
        """The insight of the Dataplane stored at global as ``mesh/name`` (its synced name)."""
        r = self._insights.get((mesh, name))
        if r is None:
            return None
        out = dict(r.spec.insight)
        zone = zone_of(r)
        out["zone"] = zone
        out["online"] = bool(out.get("online")) and zone is not None and self.zone_online(zone)
        return out

    async def zone_insight(self, zone: str) -> dict[str, Any]:
        """``zoneInsight`` of one zone for ``GET /zones+insights``."""
        page = await self.store.list(ListFilter(type="Dataplane", labels={ORIGIN: ORIGIN_ZONE, ZONE: zone}), limit=0)
        s = self.registry.session(zone)
        if s is None:
            return {"online": False, "dataplanes": page.total}
        return {
            "online": s.online,
            "connectedSince": _iso(s.connected_since),
            "disconnectedAt": _iso(s.disconnected_at) if not s.online else None,
            "cpVersion": s.version,
            "cpInstance": s.instance,
            "lastSync": {
                "globalToZone": _iso(s.last_global_to_zone),
                "zoneToGlobal": _iso(s.last_zone_to_global),
            },
            "nacks": s.nacks,
            "lastError": s.last_error,
            "dataplanes": page.total,
        }


class GlobalKds:
    """Component: the KDS gRPC server of a global CP, plus ``GlobalInventory``."""

    def __init__(
        self,
        store: Store,
        authenticate: Authenticate,
        *,
        host: str,
        port: int,
        credentials: grpc.ServerCredentials | None,
        registry: ZoneRegistry | None = None,
        stop_grace: float = 2.0,
        first_message_timeout: float = 10.0,
    ) -> None:
        self.store = store
        self.registry = registry or ZoneRegistry()
        self.inventory = GlobalInventory(store, self.registry)
        self.servicer = KdsServicer(store, self.registry, authenticate, first_message_timeout=first_message_timeout)
        self.host = host
        self.port = port
        self._credentials = credentials
        self._stop_grace = stop_grace
        self._server: grpc.aio.Server | None = None
        self._stopped = asyncio.Event()
        self._ready = False

    @property
    def name(self) -> str:
        return "kds"

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        if self._stopped.is_set():
            return
        server = grpc.aio.server(options=SERVER_OPTIONS)
        self.servicer.add_to_server(server)
        address = f"{self.host}:{self.port}"
        try:
            if self._credentials is not None:
                bound = server.add_secure_port(address, self._credentials)
            else:
                bound = server.add_insecure_port(address)
        except RuntimeError as e:
            raise AtollError(f"kds: cannot listen on {address}: {e}") from None
        if not bound:
            raise AtollError(f"kds: cannot listen on {address}")
        self._server = server
        await server.start()
        inventory = asyncio.create_task(self.inventory.run(), name="kds-inventory")
        try:
            await self.inventory.loaded.wait()
            self._ready = True
            log.info("KDS listening on %s (%s)", address, "TLS" if self._credentials else "plaintext")
            stop = asyncio.create_task(self._stopped.wait())
            done, _ = await asyncio.wait([stop, inventory], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if inventory in done:
                exc = inventory.exception()
                raise AtollError(f"kds: the inventory stopped: {exc}")
        finally:
            self._ready = False
            inventory.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await inventory
            await server.stop(self._stop_grace)

    async def stop(self) -> None:
        self._stopped.set()
