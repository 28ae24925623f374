"""What flows in each direction, and the sender-side ``Source`` that reads it from the store.

Global -> zone ``Z``: Mesh, every ``Mesh*`` policy, ExternalService, VirtualOutbound, Secret,
GlobalSecret (when registered), Zone, and the ZoneIngresses of the *other* zones that are enabled
(never ``Z``'s own, never from a zone whose ``Zone.enabled`` is false). Copies are labelled
``kuma.io/origin: global`` (a zone's ingress keeps its ``kuma.io/zone``).

Zone -> global: Dataplane, ZoneIngress, ZoneEgress and VipAllocation written in the zone (not the
copies that came from global) and ``DataplaneInsight``s built from an inventory callable (global keeps
the zones' VIP allocations only to show them: ``GET /meshes/{mesh}/_vips`` there).

A ``Source`` gives the sender the full desired set of one type (``load``); it is event driven:
``affected`` turns the types of store change events into the set of types to reload (a Zone change
reloads the ZoneIngresses, since enabling or disabling a zone changes which ingresses flow). For the
types whose copy of a resource depends on that resource alone (``per_resource``: all but the
ZoneIngresses global sends and the insights), ``load_one`` reads just the changed resource, so one
change among 10,000 Dataplanes costs one store read, not a reload of the type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from atoll.errors import NotFound
from atoll.kds.names import ORIGIN_GLOBAL, ORIGIN_ZONE, from_global, origin, zone_of
from atoll.resources.meta import Resource, ResourceMeta
from atoll.resources.models.dataplane_insight import DATAPLANE_INSIGHT, DataplaneInsightSpec
from atoll.resources.models.vip_allocation import VIP_ALLOCATION
from atoll.resources.types import all_types, types_where
from atoll.store.protocol import ListFilter, Store

ZONE_INGRESS = "ZoneIngress"
ZONE = "Zone"

InsightData = list[tuple[str, str, dict[str, Any]]]
"""(mesh, dataplane name, inventory JSON) per proxy of a zone."""
Insights = Callable[[], InsightData]


def global_to_zone_types() -> list[str]:
    """Types global sends to zones, Meshes first (the order of the first full sets)."""
    known = {t.name for t in all_types()}
    head = ["Mesh"]
    policies = [t.name for t in types_where(policy=True)]
    tail = [
        n for n in ("ExternalService", "VirtualOutbound", "Secret", "GlobalSecret", ZONE, ZONE_INGRESS) if n in known
    ]
    return head + policies + tail


def zone_to_global_types() -> list[str]:
    return ["Dataplane", ZONE_INGRESS, "ZoneEgress", VIP_ALLOCATION.name, DATAPLANE_INSIGHT.name]


async def list_all(store: Store, type: str) -> list[Resource[Any]]:
    return (await store.list(ListFilter(type=type))).items


async def get_or_none(store: Store, type: str, name: str, mesh: str | None) -> Resource[Any] | None:
    try:
        return await store.get(type, name, mesh)
    except NotFound:
        return None


class Source(Protocol):
    types: tuple[str, ...]

    async def load(self, type: str) -> list[Resource[Any]]:
        """The full set of ``type`` the peer should have now."""
        ...

    def affected(self, changed: Iterable[str]) -> set[str]:
        """The types to reload after store changes of the ``changed`` types."""
        ...

    def per_resource(self, type: str) -> bool:
        """True when the peer's copy of a stored resource of ``type`` depends on that resource alone:
        a change of it is caught up with ``load_one`` instead of reloading the whole type."""
        ...

    async def load_one(self, type: str, name: str, mesh: str | None) -> Resource[Any] | None:
        """What the peer should hold now for the stored ``type`` ``name`` (in ``mesh``), under the same
        name and mesh; ``None`` when it should hold nothing (deleted, or not sent). ``per_resource`` types only."""
        ...


class GlobalToZoneSource:
    """What global sends to ``zone``."""

    def __init__(self, store: Store, zone: str) -> None:
        self.store = store
        self.zone = zone
        self.types = tuple(global_to_zone_types())

    async def load(self, type: str) -> list[Resource[Any]]:
        items = await list_all(self.store, type)
        if type == ZONE_INGRESS:
            enabled = {z.name: bool(z.spec.is_enabled) for z in await list_all(self.store, ZONE)}
            items = [
                r
                for r in items
                if origin(r) == ORIGIN_ZONE
                and (owner := zone_of(r)) is not None
                and owner != self.zone
                and enabled.get(owner, True)
            ]
        else:
            items = [r for r in items if origin(r) != ORIGIN_ZONE]
        return [from_global(r) for r in items]

    def affected(self, changed: Iterable[str]) -> set[str]:
        out = {t for t in changed if t in self.types}
        if ZONE in out:
            out.add(ZONE_INGRESS)
        return out

    def per_resource(self, type: str) -> bool:
        return type in self.types and type != ZONE_INGRESS

    async def load_one(self, type: str, name: str, mesh: str | None) -> Resource[Any] | None:
        r = await get_or_none(self.store, type, name, mesh)
        return None if r is None or origin(r) == ORIGIN_ZONE else from_global(r)


class ZoneToGlobalSource:
    """What zone sends to global: its own proxies' resources and their insights."""

    def __init__(self, store: Store, insights: Insights | None = None) -> None:
        self.store = store
        self.types = tuple(zone_to_global_types())
        self._insights = insights
        self._last: InsightData | None = None

    async def load(self, type: str) -> list[Resource[Any]]:
        if type == DATAPLANE_INSIGHT.name:
            return insight_resources(self._last or [])
        return [r for r in await list_all(self.store, type) if origin(r) != ORIGIN_GLOBAL]

    def affected(self, changed: Iterable[str]) -> set[str]:
        return {t for t in changed if t in self.types and t != DATAPLANE_INSIGHT.name}

    def per_resource(self, type: str) -> bool:
        return type in self.types and type != DATAPLANE_INSIGHT.name

    async def load_one(self, type: str, name: str, mesh: str | None) -> Resource[Any] | None:
        r = await get_or_none(self.store, type, name, mesh)
        return None if r is None or origin(r) == ORIGIN_GLOBAL else r

    def poll_insights(self) -> bool:
        """Read the inventory callable; True when it differs from the last read (reload insights)."""
        if self._insights is None:
            return False
        data = sorted(self._insights(), key=lambda x: (x[0], x[1]))
        if data == self._last:
            return False
        self._last = data
        return True


def insight_resources(data: InsightData) -> list[Resource[Any]]:
    return [
        Resource(
            type=DATAPLANE_INSIGHT.name,
            meta=ResourceMeta(name=name, mesh=mesh),
            spec=DataplaneInsightSpec(insight=dict(insight)),
        )
        for mesh, name, insight in data
    ]
