"""The reconciler's copy of the store, and the marks that say which proxies a change affects.

``StoreMirror`` holds what config generation reads — Meshes, Dataplanes, ZoneIngresses, ZoneEgresses,
and per mesh its policies and other mesh-wide inputs (ExternalService, VirtualOutbound, Secret) — and
is fed one full ``load`` at start, then change events (``apply``) or resources the lifecycle has just
written (``upsert_*``). It is synchronous and does no I/O past ``load``.

Every change leaves marks in ``Marks`` for the next pass:

- a Dataplane: its own node (full regeneration), plus the services it serves before and after the
  change (the proxies that reach them are regenerated, and only those);
- a Mesh, policy, ExternalService, VirtualOutbound or Secret: every proxy of that mesh;
- a ZoneIngress: the services it advertises, per mesh, before and after;
- a ZoneEgress: every proxy of every mesh (their remote and external endpoints may point at it);
- a VipAllocation (the mesh's VIPs, ``atoll.proxies.vips``): its mesh's names (``names``: the pass
  regenerates the transparent-proxied proxies of the mesh if its names table changed);
- and, for all but a plain mesh-wide input, the zone proxies (``zone_proxies``).

A Dataplane whose text cannot be written out (a lone surrogate in a tag: validation refuses it at
every entry, but a store may hold one written before, or by a bypass) is kept out: it is mirrored as
absent (``refused`` says why, for inspection), so the proxies that reach its service are configured
with the other endpoints instead of failing whole.

Invariants: a mesh whose inputs changed is in ``stale_views`` (or ``all_views_stale`` is set) until
the mesh-view cache has taken the marks; a deleted Dataplane is listed in ``removed`` until the
generation state kept for it has been dropped; a resource already mirrored (same spec, not newer) leaves
no marks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import PydanticSerializationError

from atoll.resources import Resource, all_types, get_type
from atoll.resources.models.dataplane import DataplaneSpec
from atoll.resources.models.mesh import MeshSpec
from atoll.resources.models.vip_allocation import VIP_ALLOCATION, VIP_ALLOCATION_NAME, VipAllocationSpec
from atoll.resources.models.zone_egress import ZoneEgressSpec
from atoll.resources.models.zone_ingress import ZoneIngressSpec
from atoll.store import ChangeEvent, EventKind, ListFilter, Store
from atoll.topology import services

log = logging.getLogger(__name__)

MESH_WIDE_TYPES = frozenset({"ExternalService", "VirtualOutbound", "Secret"})
"""Types that are not policies but whose change affects every proxy of their mesh."""


@dataclass(slots=True)
class Marks:
    """What the next pass must regenerate, and what the caches must drop now."""

    meshes: set[str] = field(default_factory=set)
    """Every proxy of these meshes."""
    services: dict[str, set[str]] = field(default_factory=dict)
    """Per mesh, services whose endpoints changed: the proxies that reach them."""
    nodes: dict[str, set[str]] = field(default_factory=dict)
    """Per mesh, Dataplanes that changed themselves: always regenerated in full."""
    zone_proxies: bool = False
    """Regenerate zone ingresses and egresses, and publish ``availableServices``."""
    names: set[str] = field(default_factory=set)
    """Meshes whose names inputs changed: visited by the pass (see ``MeshViews.names_changed``)."""
    stale_views: set[str] = field(default_factory=set)
    all_views_stale: bool = False
    removed: list[tuple[str, str]] = field(default_factory=list)
    """(mesh, name) of Dataplanes deleted since the generation state was last told."""

    def touched(self) -> set[str]:
        """The meshes a pass must visit."""
        return self.meshes | self.services.keys() | self.nodes.keys() | self.names

    def node_changed(self, mesh: str, name: str) -> bool:
        names = self.nodes.get(mesh)
        return names is not None and name in names

    def mark_node(self, mesh: str, name: str) -> None:
        self.nodes.setdefault(mesh, set()).add(name)

    def mark_services(self, mesh: str, changed: Iterable[str]) -> None:
        self.stale_views.add(mesh)
        self.services.setdefault(mesh, set()).update(changed)

    def clear_pass(self) -> None:
        """A pass has visited every touched mesh."""
        self.meshes.clear()
        self.services.clear()
        self.nodes.clear()
        self.names.clear()


class StoreMirror:
    """What generation reads, kept in step with the store (module docstring)."""

    def __init__(self, zone: str) -> None:
        self.zone = zone
        self.marks = Marks()
        self.meshes: dict[str, Resource[MeshSpec]] = {}
        self.dataplanes: dict[str, dict[str, Resource[DataplaneSpec]]] = {}
        self.ingresses: dict[str, Resource[ZoneIngressSpec]] = {}
        self.egresses: dict[str, Resource[ZoneEgressSpec]] = {}
        self.policies: dict[str, dict[tuple[str, str], Resource[Any]]] = {}
        self.refused: dict[tuple[str, str], str] = {}
        """(mesh, name) of Dataplanes kept out of generation, and why."""
        self.vips: dict[str, Resource[VipAllocationSpec]] = {}
        """Per mesh, its VipAllocation."""

    async def load(self, store: Store) -> None:
        """Read the whole store (the watch must be open first, so nothing falls in between)."""
        for r in await read_all(store, ListFilter(type="Mesh")):
            self.meshes[r.name] = r
        for r in await read_all(store, ListFilter(type="Dataplane")):
            assert r.mesh is not None
            if self._admitted(r):
                self.dataplanes.setdefault(r.mesh, {})[r.name] = r
        for r in await read_all(store, ListFilter(type="ZoneIngress")):
            self.ingresses[r.name] = r
        for r in await read_all(store, ListFilter(type="ZoneEgress")):
            self.egresses[r.name] = r
        for r in await read_all(store, ListFilter(type=VIP_ALLOCATION.name, name_prefix=VIP_ALLOCATION_NAME)):
            if r.mesh is not None and r.name == VIP_ALLOCATION_NAME:
                self.vips[r.mesh] = r
        for type_name in [t.name for t in all_types() if t.policy or t.name in MESH_WIDE_TYPES]:
            for r in await read_all(store, ListFilter(type=type_name)):
                assert r.mesh is not None
                self.policies.setdefault(r.mesh, {})[(r.type, r.name)] = r

    def apply(self, ev: ChangeEvent) -> int:
        """Mirror one store event; 1 if generation reads its type, else 0 (ignored)."""
        r = ev.resource
        deleted = ev.kind is EventKind.DELETED
        if r.type == "Mesh":
            _put(self.meshes, r.name, r, deleted)
            self.marks.stale_views.add(r.name)
            self.marks.meshes.add(r.name)
        elif r.type == "Dataplane":
            self.upsert_dataplane(r, deleted=deleted)
        elif r.type == "ZoneEgress":
            _put(self.egresses, r.name, r, deleted)
            self._every_mesh_changed()
        elif r.type == "ZoneIngress":
            self.marks.zone_proxies = True
            old = self.ingresses.get(r.name)
            _put(self.ingresses, r.name, r, deleted)
            for ing in (old, None if deleted else r):
                advertised = ing.spec.available_services if ing is not None else None
                for av in advertised or ():
                    if av.mesh:
                        self.marks.mark_services(av.mesh, [av.tags.get("kuma.io/service", "")])
        elif r.type == VIP_ALLOCATION.name and r.mesh is not None and r.name == VIP_ALLOCATION_NAME:
            return 1 if self.upsert_vips(r, deleted=deleted) else 0
        elif (get_type(r.type).policy or r.type in MESH_WIDE_TYPES) and r.mesh is not None:
            _put(self.policies.setdefault(r.mesh, {}), (r.type, r.name), r, deleted)
            self.marks.stale_views.add(r.mesh)
            self.marks.meshes.add(r.mesh)
        else:
            return 0
        return 1

    def upsert_dataplane(self, r: Resource[DataplaneSpec], *, deleted: bool = False) -> None:
        """Mirror a Dataplane change (from the store's events, or written by the lifecycle just now)."""
        assert r.mesh is not None
        bucket = self.dataplanes.setdefault(r.mesh, {})
        old = bucket.get(r.name)
        if deleted:
            self.refused.pop((r.mesh, r.name), None)
        elif not self._admitted(r):
            deleted = True  # kept out: generated as if it did not exist (so are the proxies reaching it)
        if deleted:
            if old is None:
                return
            del bucket[r.name]
            self.marks.removed.append((r.mesh, r.name))
        else:
            if old is not None and old.meta.version >= r.meta.version and old.spec == r.spec:
                return  # already mirrored (written by the lifecycle before its event arrived)
            bucket[r.name] = r
            self.marks.mark_node(r.mesh, r.name)
        self.marks.mark_services(r.mesh, services(r) | (services(old) if old is not None else frozenset()))

    def _admitted(self, r: Resource[DataplaneSpec]) -> bool:
        """Whether ``r`` can go into generation; if not, say so once and record why in ``refused``."""
        assert r.mesh is not None
        problem = unwritable(r)
        if problem is None:
            self.refused.pop((r.mesh, r.name), None)
            return True
        if self.refused.get((r.mesh, r.name)) != problem:
            log.error("Dataplane %s/%s is left out of every configuration: %s", r.mesh, r.name, problem)
        self.refused[(r.mesh, r.name)] = problem
        return False

    def upsert_egress(self, r: Resource[ZoneEgressSpec]) -> None:
        """Mirror a ZoneEgress written by the lifecycle just now (its store event follows)."""
        old = self.egresses.get(r.name)
        if old is None or old.meta.version <= r.meta.version:
            self.egresses[r.name] = r
        if old is None or old.spec != r.spec:
            self._every_mesh_changed()
        self.marks.zone_proxies = True

    def upsert_ingress(self, r: Resource[ZoneIngressSpec]) -> None:
        """Mirror a ZoneIngress written by the lifecycle (or the publisher) just now."""
        old = self.ingresses.get(r.name)
        if old is None or old.meta.version <= r.meta.version:
            self.ingresses[r.name] = r
        self.marks.zone_proxies = True

    def upsert_vips(self, r: Resource[VipAllocationSpec], *, deleted: bool = False) -> bool:
        """Mirror a VipAllocation (from its event, or written by the allocator just now); False when it
        was mirrored already (the allocator's own write coming back as an event)."""
        assert r.mesh is not None
        old = self.vips.get(r.mesh)
        if not deleted and old is not None and old.meta.version >= r.meta.version:
            return False
        _put(self.vips, r.mesh, r, deleted)
        self.marks.stale_views.add(r.mesh)
        self.marks.names.add(r.mesh)
        return True

    def _every_mesh_changed(self) -> None:
        self.marks.all_views_stale = True
        self.marks.meshes.update(self.meshes)
        self.marks.zone_proxies = True

    # --- reading ----------------------------------------------------------------------------------

    def local_egresses(self) -> list[Resource[ZoneEgressSpec]]:
        """ZoneEgresses of this zone, by name."""
        return [ze for _, ze in sorted(self.egresses.items()) if ze.spec.zone in (None, "", self.zone)]

    def local_ingresses(self) -> list[Resource[ZoneIngressSpec]]:
        """ZoneIngresses of this zone (not copies of other zones' synced from global), by name."""
        return [
            zi
            for _, zi in sorted(self.ingresses.items())
            if (zi.spec.zone in (None, "", self.zone)) and zi.meta.labels.get("kuma.io/origin") != "global"
        ]

    def all_dataplanes(self, mesh: str | None = None) -> Iterator[Resource[DataplaneSpec]]:
        for m, bucket in sorted(self.dataplanes.items()):
            if mesh is None or m == mesh:
                yield from bucket.values()


def unwritable(r: Resource[Any]) -> str | None:
    """Why ``r``'s spec cannot be written out as UTF-8 (so no config can carry it), or None if it can.
    One serialization in pydantic's core (about 10 µs for a Dataplane), per change of the resource."""
    try:
        r.spec.model_dump_json()
    except PydanticSerializationError:
        return "it holds text that is not valid Unicode (a lone surrogate): fix or delete it"
    return None


def _put(bucket: dict[Any, Any], key: Any, r: Resource[Any], deleted: bool) -> None:
    if deleted:
        bucket.pop(key, None)
    else:
        bucket[key] = r


async def read_all(store: Store, which: ListFilter) -> list[Resource[Any]]:
    """Every resource ``which`` selects, read page by page."""
    out: list[Resource[Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = await store.list(which, offset=offset, limit=1000)
        out.extend(page.items)
        offset = page.next_offset
    return out
