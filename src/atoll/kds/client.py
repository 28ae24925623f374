"""A zone's side of KDS: dial global, keep both streams up, reconnect with backoff.

``ZoneKds`` is a supervisor component (structurally a ``cp.components.Component``). Each
connection opens ``GlobalToZoneSync`` (the zone is the ``Receiver``: global's Meshes, policies,
other zones' ingresses land in the store through a ``StoreSink`` scoped to ``kuma.io/origin:
global``, reconciled in one transaction per type on every (re)connect) and ``ZoneToGlobalSync`` (the
zone is the ``Sender`` of its Dataplanes, ZoneIngresses, ZoneEgresses and insights). Metadata:
zone name, this process's instance id, version and ``authorization: Bearer <zone token>`` (the token
file is re-read on every connect, so a rotated token is picked up).

Both streams run side by side under ``atoll.xds.pump.first_completed``: when either stream ends or
fails (or the component stops), both are cancelled and closed and the client reconnects after an exponential
backoff with full jitter (``backoff_base`` doubling up to ``backoff_max``; reset once a connection
delivered its first message). A refusal (bad token, zone claimed by another instance) is logged
with global's reason and retried the same way. The zone CP keeps serving its proxies from its store
meanwhile; ``ready`` means "running and its token not refused by global" (a refusal makes the zone CP's
``/ready`` 503 with ``not_ready_reason``: not federated, and global's reason, until a connection
succeeds, e.g. with a good token written to the token file), ``connected`` means "global answered".

Addresses: ``grpcs://host:port`` (TLS; ``ca_file`` is the root to trust, else the system's) or
``grpc://host:port`` (plaintext, logged as a warning). Several global instances (HA) are given as a
comma-separated list: a connection that delivers nothing moves the client to the next address (logged),
and the backoff grows once per round over all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from atoll.errors import AtollError, PeerProtocolError
from atoll.kds.flows import Insights, ZoneToGlobalSource, global_to_zone_types
from atoll.kds.names import ORIGIN, ORIGIN_GLOBAL, from_global
from atoll.kds.protocol import Batch, Receiver, Sender
from atoll.kds.pump import OnBatch, run_receiver, run_sender
from atoll.kds.reconcile import StoreSink
from atoll.kds.server import GLOBAL_TO_ZONE, MD_AUTHORIZATION, MD_INSTANCE, MD_VERSION, MD_ZONE, SERVICE, ZONE_TO_GLOBAL
from atoll.store.protocol import Store
from atoll.xds.pump import first_completed

log = logging.getLogger(__name__)

CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.bdp_probe", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)


@dataclass(frozen=True, slots=True)
class GlobalAddress:
    tls: bool
    host: str
    port: int

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{'grpcs' if self.tls else 'grpc'}://{self.target}"


def parse_global_address(value: str) -> GlobalAddress:
    """``grpcs://host:port`` or ``grpc://host:port``; ``ValueError`` saying what is wrong."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("grpc", "grpcs"):
        raise ValueError(f'must be grpcs://host:port (or grpc://host:port for plaintext), got "{value}"')
    rest = rest.rstrip("/")
    host, colon, port_text = rest.rpartition(":")
    if not colon or not host or not port_text.isdigit():
        raise ValueError(f'must name a host and a port, e.g. grpcs://global.example:5685, got "{value}"')
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f'port {port} out of range 1..65535 in "{value}"')
    return GlobalAddress(scheme == "grpcs", host.strip("[]"), port)


def parse_global_addresses(value: str) -> list[GlobalAddress]:
    """One or several (comma-separated) global addresses; ``ValueError`` naming the bad one."""
    parts = [p.strip() for p in value.split(",")]
    if not any(parts):
        raise ValueError("must name at least one address, e.g. grpcs://global.example:5685")
    if not all(parts):
        raise ValueError(f'an empty address in the list "{value}"')
    return [parse_global_address(p) for p in parts]


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)], at least ``base / 2``."""
    ceiling = min(cap, base * (2 ** min(attempt, 30)))
    return float(max(base / 2, ceiling * rand()))


class ZoneKds:
    """Component: keeps a zone CP synced with global (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        zone: str,
        global_address: str,
        token: Callable[[], str],
        ca_file: Path | None = None,
        insights: Insights | None = None,
        instance_id: str | None = None,
        version: str = "",
        backoff_base: float = 0.2,
        backoff_max: float = 10.0,
        insight_interval: float = 0.5,
    ) -> None:
        self.store = store
        self.zone = zone
        self.addresses = parse_global_addresses(global_address)
        self._current = 0
        self._token = token
        self._ca_file = ca_file
        self._insights = insights
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.version = version
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._insight_interval = insight_interval
        self._stop = asyncio.Event()
        self._running = False
        self.connected = False
        self.connects = 0  # connections that delivered a first message
        self.last_error: str | None = None
        self.refused: str | None = None  # global's reason for refusing the last connection

    @property
    def name(self) -> str:
        return "kds"

    @property
    def address(self) -> GlobalAddress:
        """The global address this client dials now."""
        return self.addresses[self._current]

    @property
    def ready(self) -> bool:
        return self._running and self.refused is None

    @property
    def not_ready_reason(self) -> str | None:
        if self.refused is None:
            return None
        return f"zone {self.zone} is not federated: global at {self.address} refused it: {self.refused}"

    async def start(self) -> None:
        if self._stop.is_set():
            return
        if not all(a.tls for a in self.addresses):
            log.warning("KDS to global at %s is plaintext (grpc://): use grpcs:// outside tests", self.address)
        self._running = True
        attempt = 0
        try:
            while not self._stop.is_set():
                delivered = await self._connect_once()
                if self._stop.is_set():
                    break
                rounds = self._next_address(delivered)
                attempt = 0 if delivered else attempt + rounds
                delay = backoff_delay(attempt, self._backoff_base, self._backoff_max)
                log.info("KDS: reconnecting to global in %.2fs", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        finally:
            self._running = False
            self.connected = False

    async def stop(self) -> None:
        self._stop.set()

    def _next_address(self, delivered: bool) -> int:
        """After a connection that delivered nothing, move to the next address; 1 when a round over
        every address ended (the backoff then grows), else 0."""
        if delivered or len(self.addresses) == 1:
            return 0 if delivered else 1
        self._current = (self._current + 1) % len(self.addresses)
        log.warning("KDS: moving to global at %s (%s)", self.address, self.last_error or "no answer")
        return 1 if self._current == 0 else 0

    def _credentials(self) -> grpc.ChannelCredentials:
        root = None
        if self._ca_file is not None:
            try:
                root = self._ca_file.read_bytes()
            except OSError as e:
                raise AtollError(f"global_ca_file: cannot read {self._ca_file}: {e.strerror or e}") from None
        return grpc.ssl_channel_credentials(root_certificates=root)

    def _dial(self) -> tuple[grpc.aio.Channel, tuple[tuple[str, str], ...]] | None:
        """A channel to global and the call metadata; ``None`` (the reason noted) if the token or the CA
        cannot be read."""
        try:
            token = self._token().strip()
        except (OSError, AtollError) as e:
            self.last_error = f"cannot read the zone token: {e}"
            log.error("KDS: %s", self.last_error)
            return None
        if self.address.tls:
            try:
                creds = self._credentials()
            except AtollError as e:
                self.last_error = str(e)
                log.error("KDS: %s", e)
                return None
            channel = grpc.aio.secure_channel(self.address.target, creds, options=CHANNEL_OPTIONS)
        else:
            channel = grpc.aio.insecure_channel(self.address.target, options=CHANNEL_OPTIONS)
        metadata = (
            (MD_ZONE, self.zone),
            (MD_INSTANCE, self.instance_id),
            (MD_VERSION, self.version),
            (MD_AUTHORIZATION, f"Bearer {token}"),
        )
        return channel, metadata

    async def _connect_once(self) -> bool:
        """One connection: both streams until either ends. True if global delivered something."""
        dialed = self._dial()
        if dialed is None:
            return False
        channel, metadata = dialed
        delivered = False

        def on_batch(batch: Batch, errors: list[str]) -> None:
            nonlocal delivered
            if not delivered:
                delivered = True
                self.connects += 1
                self.connected = True
                self.last_error = None
                self.refused = None
                log.info("KDS: connected to global at %s as zone %s", self.address, self.zone)

        try:
            g2z = channel.stream_stream(
                f"/{SERVICE}/{GLOBAL_TO_ZONE}",
                request_serializer=discovery_pb2.DeltaDiscoveryRequest.SerializeToString,
                response_deserializer=discovery_pb2.DeltaDiscoveryResponse.FromString,
            )(metadata=metadata)
            z2g = channel.stream_stream(
                f"/{SERVICE}/{ZONE_TO_GLOBAL}",
                request_serializer=discovery_pb2.DeltaDiscoveryResponse.SerializeToString,
                response_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
            )(metadata=metadata)
            # Global answers with headers once it accepted the zone, or ends the call with the reason.
            try:
                await asyncio.gather(g2z.initial_metadata(), z2g.initial_metadata())
            except grpc.aio.AioRpcError as e:
                self._note_end([e])
                return False
            refused = await _final_statuses(g2z, z2g)
            if refused:
                self._note_end(refused)
                return False
            results = await self._sync(g2z, z2g, on_batch)
            if not self._stop.is_set():
                self._note_end([*await _final_statuses(g2z, z2g), *results[:2]])
        finally:
            self.connected = False
            await channel.close(grace=None)
        return delivered

    async def _sync(self, g2z: Any, z2g: Any, on_batch: OnBatch) -> list[object]:
        """Both streams side by side until either ends or the component stops; what each pump ended with."""
        sink = StoreSink(
            self.store,
            scope={ORIGIN: ORIGIN_GLOBAL},
            adopt=from_global,
            local_name=lambda name, mesh: name,
        )
        source = ZoneToGlobalSource(self.store, self._insights)
        return await first_completed(
            run_receiver(g2z, Receiver(global_to_zone_types()), sink, on_batch=on_batch, label="kds global->zone"),
            run_sender(
                z2g,
                Sender(source.types),
                source,
                self.store,
                insight_interval=self._insight_interval,
                label="kds zone->global",
            ),
            self._stop.wait(),
            names=("kds-global-to-zone", "kds-zone-to-global", "kds-stop"),
        )

    def _note_end(self, results: Sequence[object]) -> None:
        """Log why the connection ended: the calls' final statuses first (a refusal by global
        shows there even when a write failed first), then what the pumps raised."""
        for r in results:
            if isinstance(r, tuple):
                code, details = r
                self.last_error = f"{code.name}: {details}"
                if code in _REFUSALS:
                    self.refused = details if code in _TOKEN_REFUSALS else None
                    log.error("KDS: global refused zone %s: %s", self.zone, details)
                else:
                    log.warning("KDS: stream to global ended: %s", self.last_error)
                return
            if isinstance(r, grpc.aio.AioRpcError):
                code = r.code()
                self.last_error = f"{code.name}: {r.details()}"
                if code in _REFUSALS:
                    self.refused = str(r.details()) if code in _TOKEN_REFUSALS else None
                    log.error("KDS: global refused zone %s: %s", self.zone, r.details())
                else:
                    log.warning("KDS: stream to global ended: %s", self.last_error)
                return
            if isinstance(r, PeerProtocolError):
                self.last_error = f"global broke the protocol: {r}"
                log.warning("KDS: %s", self.last_error)
                return
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                self.last_error = f"{type(r).__name__}: {r}"
                log.error("KDS: sync failed", exc_info=r)
                return
        self.last_error = "global closed the stream"
        log.warning("KDS: %s", self.last_error)


_REFUSALS = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.ALREADY_EXISTS)
_TOKEN_REFUSALS = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
"""Refusals of the zone's token: the zone is not federated until it has a good one, so it is not ready.
(``ALREADY_EXISTS``, the zone held by another instance of it, is not: that one is federated.)"""


async def _final_statuses(*calls: Any) -> list[tuple[grpc.StatusCode, str]]:
    """(code, details) of the calls that ended with an error other than our own cancellation."""
    out = []
    for call in calls:
        if not call.done():
            continue
        code = await call.code()
        if code not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            out.append((code, str(await call.details())))
    return out
