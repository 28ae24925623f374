"""HA wiring: what ``build_supervisor`` adds so that N instances of a role can share one store.

Every CP runs the same parts whether it is alone or one of N (the store decides: a PostgreSQL store
gets ``PgCoordination``, SQLite and memory a ``MemoryCoordination`` that grants the lease at once,
the data-dir lock keeping them single-instance):

- ``HaComponent`` ("ha"): the ``LeaderElector`` of the role's lease (``lease_name``) and the
  ``InstanceRegistry``, run together; it closes the coordination when both have ended.
- The leader-only work, each a ``LeaderOnly`` built by ``build_supervisor``: a zone's KDS client, global's
  CA authority, ``PublishWhenElected`` (availableServices: the reconciler writes them only while
  leading, see ``AvailableServicesPublisher.enabled``; a new leader publishes once at once); a
  standalone leader creates mesh CAs (``atoll.cp.xds.mesh_ca_source``), followers read them. The
  leader also cleans up after dead instances (``InstanceRegistry``'s ``on_dead``).
- VIP allocation (``atoll.topology.service_names``, written elsewhere) is leader-only work too: run its
  allocator as ``LeaderOnly("vips", elector, factory)`` next to the others here.

The reports instances exchange through the registry (``zone_report``, ``global_report``) and the
readers built on them (``zone_insights``, ``SharedGlobalInsights``) make every instance answer alike.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from atoll.cp.config import CpConfig
from atoll.cp.instances import InstanceRegistry
from atoll.cp.leader import LeaderElector
from atoll.errors import AtollError
from atoll.kds.flows import InsightData
from atoll.kds.server import GlobalInventory
from atoll.kds.zones import ZoneRegistry
from atoll.proxies.inventory import Inventory
from atoll.proxies.reconciler import ProxyReconciler
from atoll.resources.proxy_id import NodeId
from atoll.security.mesh_ca import CaManager
from atoll.store.coordination import Coordination, MemoryCoordination

log = logging.getLogger(__name__)


def coordinations_for(config: CpConfig) -> tuple[Coordination, Coordination]:
    """The elector's and the registry's coordination: in PostgreSQL for ``--store postgres`` (two, each
    with its own connection); one in memory (single instance) otherwise."""
    if config.store == "postgres" and config.store_dsn:
        from atoll.store.pg_coordination import PgCoordination

        return PgCoordination(config.store_dsn), PgCoordination(config.store_dsn)
    local = MemoryCoordination()
    return local, local


def lease_name(config: CpConfig) -> str:
    """One lease per role sharing a store: ``global``, ``zone/<zone>`` or ``standalone``."""
    if config.mode == "zone":
        return f"zone/{config.zone or 'default'}"
    return config.mode


def new_instance_id(config: CpConfig) -> str:
    prefix = config.zone if config.mode == "zone" and config.zone else config.mode
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def base_report(config: CpConfig, version: str) -> dict[str, Any]:
    return {
        "address": f"{config.api_host}:{config.api_port}",
        "mode": config.mode,
        "zone": config.zone,
        "version": version,
    }


class HaComponent:
    """Component "ha": the elector and the registry, run together (module docstring). Each has a
    coordination of its own (for PostgreSQL: its own connection), so a slow heartbeat never delays a
    lease renewal; both are closed when the component ends."""

    def __init__(
        self, coordinations: tuple[Coordination, ...], elector: LeaderElector, registry: InstanceRegistry
    ) -> None:
        self.coordinations = list({id(c): c for c in coordinations}.values())  # each closed once
        self.elector = elector
        self.registry = registry

    @property
    def name(self) -> str:
        return "ha"

    @property
    def ready(self) -> bool:
        return self.elector.ready and self.registry.ready

    async def start(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.elector.start(), name="ha-elector")
                tg.create_task(self.registry.start(), name="ha-registry")
        finally:
            for c in self.coordinations:
                await c.close()

    async def stop(self) -> None:
        await self.registry.stop()
        await self.elector.stop()


class PublishWhenElected:
    """Leader-only: a new leader publishes ``availableServices`` once (then the reconciler's passes do)
    and, when it is the CA authority, creates the CA of every mesh that lacks one (a previous leader may
    have died first); the Secrets it writes bring the meshes back to every instance's reconciler."""

    def __init__(self, reconciler: ProxyReconciler, cas: CaManager | None = None) -> None:
        self._reconciler = reconciler
        self._cas = cas
        self._stop = asyncio.Event()
        self._running = False

    @property
    def name(self) -> str:
        return "available-services"

    @property
    def ready(self) -> bool:
        return self._running

    async def start(self) -> None:
        self._running = True
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            ready = asyncio.ensure_future(self._reconciler.ready.wait())
            await asyncio.wait({ready, stop}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if not self._stop.is_set():
                self._reconciler.mirror.marks.zone_proxies = True
                await self._reconciler.publish_available_services()
                await self._ensure_cas()
            await stop
        finally:
            stop.cancel()
            self._running = False

    async def stop(self) -> None:
        self._stop.set()

    async def _ensure_cas(self) -> None:
        if self._cas is None:
            return
        for mesh in list(self._reconciler.mirror.meshes.values()):
            try:
                await self._cas.ensure_ca(mesh)
            except AtollError as e:
                log.error("mesh %s: cannot create its CA: %s", mesh.name, e)


# -- reports and the readers built on them --------------------------------------------------------------


def zone_report(inventory: Inventory) -> Callable[[], Mapping[str, Any]]:
    """A zone instance reports the proxies connected to it, with their insights."""

    def report() -> Mapping[str, Any]:
        return {"proxies": {i.node_id: i.to_json() for i in inventory.all() if i.connected}}

    return report


def zone_insights(inventory: Inventory, registry: InstanceRegistry) -> Callable[[], InsightData]:
    """The insights a zone's KDS leader sends global: its own proxies' and every other instance's."""

    def insights() -> InsightData:
        out: InsightData = []
        seen: set[str] = set()
        for insight in inventory.all():
            node = NodeId.parse(insight.node_id)
            if node.mesh is not None:
                out.append((node.mesh, node.name, insight.to_json()))
                seen.add(insight.node_id)
        for nid, data in registry.held_insights():
            node = NodeId.parse(nid)
            if node.mesh is not None and nid not in seen:
                out.append((node.mesh, node.name, dict(data)))
        return out

    return insights


def peer_dataplane_insight(registry: InstanceRegistry) -> Callable[[str, str], dict[str, Any] | None]:
    """``(mesh, name) -> insight`` of a proxy another zone instance serves (for ``dataplanes+insights``)."""

    def insight(mesh: str, name: str) -> dict[str, Any] | None:
        nid = str(NodeId.of("Dataplane", mesh, name))
        for held, data in registry.held_insights():
            if held == nid:
                return dict(data)
        return None

    return insight


def global_report(zones: ZoneRegistry) -> Callable[[], Mapping[str, Any]]:
    """A global instance reports the zones whose KDS streams it holds."""

    def report() -> Mapping[str, Any]:
        return {
            "zones": {
                s.zone: {"online": True, "cpInstance": s.instance, "cpVersion": s.version, "nacks": s.nacks}
                for s in zones.sessions()
                if s.online
            }
        }

    return report


class SharedGlobalInsights:
    """Global's insight readers, answering alike on every instance: a zone whose KDS stream another
    instance holds is online here too, with that instance's session."""

    def __init__(self, inventory: GlobalInventory, registry: InstanceRegistry) -> None:
        self._inventory = inventory
        self._registry = registry
        local = inventory.zone_online
        inventory.zone_online = lambda zone: local(zone) or registry.zone_session(zone) is not None

    async def zone_insight(self, zone: str) -> dict[str, Any]:
        local = await self._inventory.zone_insight(zone)
        if local.get("online"):
            return local
        held = self._registry.zone_session(zone)
        if held is None:
            return local
        return {**local, **held, "online": True, "disconnectedAt": None}
