"""The ADS component of a zone (or standalone) CP: the parts that serve proxies, wired, under the supervisor.

``XdsComponent`` is the one place these parts are put together, each given what it uses::

    store ──► CaManager ──► ca_source (create a mesh's CA here, or read the one synced from global)
    store, SnapshotCache, ca_source ──► ProxyReconciler (store changes -> snapshots)
    store, Inventory ──► RemovalTimers (a disconnected proxy's resource is deleted after a grace)
    store, reconciler, inventory, removal timers, auth ──► DataplaneLifecycle (bootstrap, registration,
            health, and the hooks the ADS server calls as streams open and close)
    SnapshotCache, lifecycle hooks, PeerGate ──► AdsServicer ──► gRPC server on xds_host:xds_port (TLS when
            given ``credentials``; without, SDS secrets are withheld from remote peers)
    lifecycle, inventory, reconciler, cache, AdminRequestQueue ──► ProxyApi (``api``: the REST side)

``start()`` listens, runs the reconciler, and once it has loaded the store starts the removal timers
and turns ``ready`` (so ``/ready`` means proxies can be served); it serves until ``stop()``, then stops
the removal timers and the gRPC server.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
from collections.abc import Callable

import grpc

from atoll.pki import CaBundle
from atoll.proxies.admin_requests import AdminRequestQueue
from atoll.proxies.endpoints import ProxyApi
from atoll.proxies.identities import CaSource
from atoll.proxies.inventory import Inventory
from atoll.proxies.lifecycle import DataplaneLifecycle
from atoll.proxies.reconciler import ProxyReconciler
from atoll.proxies.removal import RemovalTimers
from atoll.resources import Resource
from atoll.resources.models.mesh import MeshSpec
from atoll.security import CaManager, ProxyAuthenticator
from atoll.store import Store
from atoll.xds.peers import PeerGate, is_loopback_peer
from atoll.xds.server import AdsServicer, SnapshotCache, make_server

log = logging.getLogger(__name__)


def mesh_ca_source(cas: CaManager, *, authority: bool, leads: Callable[[], bool] = lambda: True) -> CaSource:
    """A standalone CP (or global) creates a mesh's CA; a federated zone uses the one synced from global.
    With several instances on one store only the leader (``leads``) creates; the others read what it
    created (its Secrets' events bring the mesh back to the reconciler)."""

    async def ca_source(mesh: Resource[MeshSpec]) -> CaBundle | None:
        if authority and leads():
            return await cas.ensure_ca(mesh)
        backend = mesh.spec.mtls.enabled() if mesh.spec.mtls is not None else None
        return await cas.get_ca(mesh.name, backend.name) if backend is not None else None

    return ca_source


def _remote(peer: str) -> bool:
    """Plaintext ADS withholds SDS secrets from every peer not on this host."""
    return not is_loopback_peer(peer)


class XdsComponent:
    """Serving proxies: ADS, the reconciler and the lifecycle, as one supervised component."""

    def __init__(
        self,
        store: Store,
        *,
        zone: str,
        xds_host: str,
        xds_port: int,
        xds_advertised_host: str | None,
        grace: float,
        window: float,
        auth: ProxyAuthenticator,
        ca_authority: bool,
        credentials: grpc.ServerCredentials | None = None,
        gate: PeerGate | None = None,
        ads_cert_pem: str | None = None,
        instance_id: str | None = None,
        leads: Callable[[], bool] = lambda: True,
    ) -> None:
        self.cache = SnapshotCache()
        self.inventory = Inventory(cp_instance=instance_id or f"{zone}-{uuid.uuid4().hex[:8]}")
        ca_source = mesh_ca_source(CaManager(store), authority=ca_authority, leads=leads)
        self.reconciler = ProxyReconciler(store, self.cache, zone=zone, window=window, ca_source=ca_source)
        self.removal = RemovalTimers(store, self.inventory, grace=grace, zone=zone)
        self.lifecycle = DataplaneLifecycle(
            store,
            self.reconciler,
            self.inventory,
            self.removal,
            xds_port=xds_port,
            xds_advertised_host=xds_advertised_host,
            zone=zone,
            auth=auth,
            xds_tls=credentials is not None,
        )
        self.servicer = AdsServicer(
            self.cache,
            on_stream_open=self.lifecycle.on_stream_open,
            on_stream_close=self.lifecycle.on_stream_close,
            on_status=self.lifecycle.on_status,
            gate=gate,
            withhold_secrets=None if credentials is not None else _remote,
        )
        self.api = ProxyApi(
            self.lifecycle, self.inventory, self.reconciler, self.cache, AdminRequestQueue(), ads_cert_pem=ads_cert_pem
        )
        self._host = xds_host
        self._port = xds_port
        self._credentials = credentials
        self._serving = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def name(self) -> str:
        return "xds"

    @property
    def ready(self) -> bool:
        return self._serving.is_set()

    async def start(self) -> None:
        if self._stopping:
            return
        self._task = asyncio.current_task()
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve()
        if not self._stopping:
            raise RuntimeError("the ADS server stopped on its own")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _serve(self) -> None:
        server = make_server(self.servicer, self._port, self._host, credentials=self._credentials)
        await server.start()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.reconciler.run(), name="xds-reconciler")
                await self.reconciler.ready.wait()
                await self.removal.start()
                gc.freeze()  # long-lived start-up objects out of the collector's way (fan-out notes)
                self._serving.set()
                log.info(
                    "serving ADS on %s:%d (%s)", self._host, self._port, "TLS" if self._credentials else "plaintext"
                )
                await asyncio.Event().wait()
        finally:
            self._serving.clear()
            await self.removal.close()
            await server.stop(1.0)
