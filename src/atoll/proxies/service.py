"""Everything a CP needs to serve proxies, wired in one place: cache, reconciler, lifecycle, ADS server.

``ProxyService`` builds the parts from what they use (a store, the zone name, ports, timings) and is
what the REST API calls for ``/bootstrap``, ``/dp/health``, insights and the served xDS config
(``atoll.api.deps.ProxyEndpoints``). ``run()`` serves ADS until cancelled: it starts the gRPC server,
the reconciler (store events -> snapshots) and the lifecycle's removal timers, and sets ``ready``
once the server listens and the reconciler has loaded the store.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from typing import Any

from atoll.errors import FieldError, InvalidInput, NotFound
from atoll.pki import CaBundle
from atoll.proxies.admin_relay import AdminRelay, RelayTimeout
from atoll.proxies.inventory import Inventory
from atoll.proxies.lifecycle import DataplaneLifecycle
from atoll.proxies.reconciler import ProxyReconciler, egress_node_id, node_id
from atoll.resources import Resource
from atoll.resources.models.mesh import MeshSpec
from atoll.security import CaManager, NoAuth, ProxyAuthenticator
from atoll.store import Store
from atoll.xds.generate import message_to_dict
from atoll.xds.server import PUSH_ORDER, AdsServicer, SnapshotCache, make_server

log = logging.getLogger(__name__)

_SHORT = {
    "type.googleapis.com/envoy.config.listener.v3.Listener": "listeners",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration": "routes",
    "type.googleapis.com/envoy.config.cluster.v3.Cluster": "clusters",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment": "endpoints",
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret": "secrets",
}


def _redact(value: Any) -> Any:
    """Private keys never leave the CP through inspection: ``private_key`` becomes ``[redacted]``."""
    if isinstance(value, dict):
        return {k: ("[redacted]" if k == "private_key" else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


class ProxyService:
    def __init__(
        self,
        store: Store,
        *,
        zone: str,
        xds_host: str,
        xds_port: int,
        xds_advertised_host: str | None = None,
        grace: float = 10.0,
        window: float = 0.02,
        auth: ProxyAuthenticator | None = None,
        ca_authority: bool = True,
    ) -> None:
        self.instance = f"{zone}-{uuid.uuid4().hex[:8]}"
        self.cache = SnapshotCache()
        self.inventory = Inventory(cp_instance=self.instance)
        self.cas = CaManager(store)

        async def ca_source(mesh: Resource[MeshSpec]) -> CaBundle | None:
            # A standalone CP (or global) creates a mesh's CA; a federated zone uses the one synced from global.
            if ca_authority:
                return await self.cas.ensure_ca(mesh)
            backend = mesh.spec.mtls.enabled() if mesh.spec.mtls is not None else None
            return await self.cas.get_ca(mesh.name, backend.name) if backend is not None else None

        self.reconciler = ProxyReconciler(store, self.cache, zone=zone, window=window, ca_source=ca_source)
        self.lifecycle = DataplaneLifecycle(
            store,
            self.reconciler,
            self.inventory,
            xds_port=xds_port,
            xds_advertised_host=xds_advertised_host,
            grace=grace,
            zone=zone,
            auth=auth or NoAuth(),
        )
        self.servicer = AdsServicer(
            self.cache,
            on_stream_open=self.lifecycle.on_stream_open,
            on_stream_close=self.lifecycle.on_stream_close,
            on_status=self.lifecycle.on_status,
        )
        self.relay = AdminRelay()
        self._store = store
        self._host = xds_host
        self._port = xds_port
        self.ready = asyncio.Event()

    # --- ProxyEndpoints (REST) ------------------------------------------------------------------

    async def bootstrap(self, body: dict[str, Any], cp_host: str) -> dict[str, Any]:
        return await self.lifecycle.bootstrap(body, cp_host)

    async def report_health(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.lifecycle.report_health(body)

    def insight(self, mesh: str, name: str) -> dict[str, Any] | None:
        i = self.inventory.get(node_id(mesh, name))
        return i.to_json() if i is not None else None

    def egress_insight(self, name: str) -> dict[str, Any]:
        """Zone egress ``name`` at this CP: its proxy's state, and what it routes (SNI -> where)."""
        nid = egress_node_id(name)
        i = self.inventory.get(nid)
        out: dict[str, Any] = i.to_json() if i is not None else {"online": False}
        view = self.reconciler.egress_view(name)
        if view is not None:
            out["passThrough"] = [
                {
                    "mesh": r.mesh,
                    "service": r.service,
                    "sni": r.sni,
                    "zones": {e.zone: e.weight or 1 for e in r.endpoints},
                }
                for r in view.passthrough
            ]
            out["externalServices"] = [
                {
                    "mesh": r.mesh,
                    "service": r.service,
                    "sni": r.sni,
                    "address": f"{r.external.host}:{r.external.port}",
                    "tls": r.external.tls is not None,
                    "permissions": [
                        {"policy": p.policy, "action": p.action, "from": dict(p.source)} for p in r.permissions
                    ],
                }
                for r in view.externals
            ]
            out["conflicts"] = list(view.conflicts)
        return out

    def xds_config(self, mesh: str, name: str) -> dict[str, Any] | None:
        snapshot = self.cache.get(node_id(mesh, name))
        if snapshot is None:
            return None
        return {
            _SHORT[t]: [_redact(message_to_dict(vr.message)) for _, vr in sorted(snapshot.resources(t).items())]
            for t in PUSH_ORDER
        }

    async def poll_admin_request(
        self, mesh: str, name: str, wait: float, token: str | None = None
    ) -> dict[str, Any] | None:
        """The agent's long poll: the next admin request for its proxy, or None."""
        await self.lifecycle.verify(token, await self._store.get("Dataplane", name, mesh))
        req = await self.relay.poll(node_id(mesh, name), wait)
        return None if req is None else {"id": req.id, "path": req.path}

    def admin_response(self, body: dict[str, Any]) -> None:
        rid, status = body.get("id"), body.get("status")
        if not isinstance(rid, str) or not isinstance(status, int):
            raise InvalidInput(
                [FieldError("id", "required: a string"), FieldError("status", "required: an HTTP status")],
                title="invalid admin response",
            )
        self.relay.answer(rid, status, body.get("body"))

    async def admin(self, mesh: str, name: str, path: str) -> Any:
        """``path`` of the proxy's Envoy admin API, fetched through its agent."""
        nid = node_id(mesh, name)
        if not self.inventory.connected(nid):
            raise NotFound(f"proxy {nid} is not connected to this control plane")
        try:
            answer = await self.relay.ask(nid, path)
        except RelayTimeout as e:
            raise NotFound(str(e)) from None
        return answer["body"]

    # --- running --------------------------------------------------------------------------------

    async def run(self) -> None:
        server = make_server(self.servicer, self._port, self._host)
        await server.start()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.reconciler.run(), name="xds-reconciler")
                await self.reconciler.ready.wait()
                await self.lifecycle.start()
                gc.freeze()  # long-lived start-up objects out of the collector's way (fan-out notes)
                self.ready.set()
                log.info("serving ADS on %s:%d", self._host, self._port)
                await asyncio.Event().wait()
        finally:
            self.ready.clear()
            await self.lifecycle.close()
            await server.stop(1.0)
