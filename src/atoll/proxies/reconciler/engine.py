"""One reconcile pass: the marks left by store changes -> the snapshots of exactly the proxies they affect.

``ReconcileEngine`` owns the parts and is what the lifecycle and the loop talk to; it never blocks and
does no I/O but the CA refresh and the ``availableServices`` publication (both ``async``):

    StoreMirror (store copy + Marks) ──► MeshViews (one view per mesh, endpoint deltas)
        ──► SidecarConfigs (per-proxy snapshots, fast path, rebasing)
        ──► ZoneProxyConfigs (ingresses, egresses) ──► AvailableServicesPublisher (store writer)

Before a pass, ``allocate_vips`` has the ``VipAllocator`` (``atoll.proxies.vips``) give every new
name of every mesh its VIP (a store write only when the mesh's wanted names changed); the
allocation is mirrored at once, so the pass serves the names with their VIPs. A CIDR too small is
logged once per new situation and kept for inspection (``vip_problem``).

``flush`` runs a pass: for each touched mesh, the proxies named by the marks that have an open stream
(or a cached snapshot) are brought up to the mesh's view — a proxy whose own Dataplane changed in full,
any other by the endpoint-only fast path when it applies; a proxy whose Dataplane is gone loses its
snapshot; when the mesh's names table changed (``MeshViews.names_changed``), its transparent-proxied
proxies are regenerated too. Zone proxies are regenerated when any mesh was touched. Every ``REBASE_EVERY`` views built
for a mesh, its untouched proxies are rebased. ``PassStats`` of the last pass and running counters are
kept for metrics and tests.

Invariants: marks are consumed only by a pass (``Marks.clear_pass``); generation state kept for a
deleted Dataplane is dropped right after the mirror saw the deletion; before the store is loaded
(``loaded``) nothing is generated — the first pass after loading serves the streams already open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from atoll.errors import NotFound
from atoll.proxies.identities import CaSource, IdentityBook
from atoll.proxies.reconciler.mesh_views import MeshViews
from atoll.proxies.reconciler.mirror import StoreMirror
from atoll.proxies.reconciler.sidecars import REBASE_EVERY, ProxyKind, SidecarConfigs, SnapshotWriter
from atoll.proxies.reconciler.zone_proxies import AvailableServicesPublisher, ZoneProxyConfigs
from atoll.proxies.vips import DEFAULT_VIP_CIDR, Exhausted, VipAllocator
from atoll.resources import Resource
from atoll.resources.models.dataplane import DataplaneSpec
from atoll.resources.models.vip_allocation import VipAllocationSpec
from atoll.resources.models.zone_egress import ZoneEgressSpec
from atoll.resources.models.zone_ingress import ZoneIngressSpec
from atoll.resources.proxy_id import NodeId, dataplane_node_id
from atoll.store import ChangeEvent, Store
from atoll.topology import dependents
from atoll.topology.egress import EgressView
from atoll.topology.service_names import ServiceNames
from atoll.xds.server import SnapshotCache

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PassStats:
    """What one reconcile pass did (for metrics and tests)."""

    events: int
    meshes: int
    generated: int
    unchanged: int
    seconds: float
    patched: int = 0
    """Of ``generated``, how many took the endpoint-only fast path."""


@dataclass(frozen=True, slots=True)
class NamesReport:
    """A mesh's names as served here, for inspection (``ReconcileEngine.names_report``)."""

    names: ServiceNames
    allocation: Resource[VipAllocationSpec] | None
    cidr: str
    problems: tuple[str, ...]
    unallocated: tuple[str, ...]
    """Hostnames wanted that have no VIP (yet, or because the CIDR is too small)."""


class ReconcileEngine:
    """The parts of the reconciler, wired, and the pass over them (module docstring)."""

    def __init__(
        self,
        store: Store,
        cache: SnapshotCache,
        *,
        zone: str,
        window: float = 0.02,
        ca_source: CaSource | None = None,
        identities: IdentityBook | None = None,
        endpoint_fast_path: bool = True,
        vip_cidr: str = DEFAULT_VIP_CIDR,
    ) -> None:
        self._store = store
        self._window = window
        self._ca_source = ca_source
        self.identities = identities or IdentityBook(zone=zone)
        self.mirror = StoreMirror(zone)
        self.views = MeshViews(self.mirror)
        self._writer = SnapshotWriter(cache)
        self.sidecars = SidecarConfigs(self._writer, self.views, self.identities, fast_path=endpoint_fast_path)
        self.zone_proxies = ZoneProxyConfigs(self._writer, self.mirror, self.views, self.identities)
        self.publisher = AvailableServicesPublisher(store, self.mirror, self.views)
        self.vips = VipAllocator(store, vip_cidr)
        self._vip_problems: dict[str, str] = {}
        self._vips_ensured: dict[str, tuple[object, object]] = {}
        self.ready = asyncio.Event()
        self.loaded = False  # the store has been read whole: views and generation may start
        self.last_pass: PassStats | None = None
        self.passes = 0
        self.generated_total = 0

    # --- changes in -------------------------------------------------------------------------------

    def apply(self, ev: ChangeEvent) -> int:
        """Mirror a store event; 1 if it matters to generation."""
        n = self.mirror.apply(ev)
        self._drop_removed()
        return n

    def upsert_dataplane(self, r: Resource[DataplaneSpec], *, deleted: bool = False) -> None:
        """Mirror a Dataplane change (from the store's events, or written by the lifecycle just now)."""
        self.mirror.upsert_dataplane(r, deleted=deleted)
        self._drop_removed()

    def upsert_egress(self, r: Resource[ZoneEgressSpec]) -> None:
        self.mirror.upsert_egress(r)

    def upsert_ingress(self, r: Resource[ZoneIngressSpec]) -> None:
        self.mirror.upsert_ingress(r)

    def _drop_removed(self) -> None:
        removed = self.mirror.marks.removed
        while removed:
            self.sidecars.forget(*removed.pop())

    async def load(self) -> None:
        """Read the store whole, load the CAs, and run the first pass (the watch is open already)."""
        await self.mirror.load(self._store)
        self.mirror.marks.meshes.update(self.mirror.meshes)
        await self.refresh_cas()
        await self.allocate_vips()
        # Streams that opened while loading may have had views built from part of the store: drop
        # them. Those streams are watching by now, so this first pass generates their config.
        self.views.reset()
        self.loaded = True
        self.flush()

    async def refresh_cas(self) -> None:
        """Load (or create, where this CP is the authority) the CA of every touched mesh with mTLS."""
        if self._ca_source is not None:
            await self.identities.refresh_cas(self.mirror.marks.meshes, self.mirror.meshes, self._ca_source)

    def rotate_due(self) -> None:
        """Certificates reached their rotation point: regenerate their proxies now."""
        for nid in self.identities.due():
            node = NodeId.parse(nid)
            if node.mesh is None:
                self.zone_proxies.rotated(node)
                self.mirror.marks.zone_proxies = True
            else:
                self.mirror.marks.mark_node(node.mesh, node.name)
        self.flush()

    async def allocate_vips(self) -> int:
        """Give the new names of every mesh their VIPs; how many allocations were written.

        Every mesh is looked at, not only the touched ones: a proxy connecting registers its Dataplane
        through the lifecycle, whose own pass consumes the marks before the store's event comes back
        here (its demand is cached, so an unchanged mesh costs one comparison)."""
        written = 0
        if not self.vips.enabled():
            return 0  # not the leader: the leader's allocation arrives as store events
        for mesh in sorted(self.mirror.marks.touched() | set(self.mirror.meshes)):
            demand = self.views.demand(mesh)
            if demand is None:
                self._vip_problems.pop(mesh, None)
                self._vips_ensured.pop(mesh, None)
                continue
            current = self.mirror.vips.get(mesh)
            if self._vips_ensured.get(mesh) == (demand, current):
                continue  # the same demand against the same allocation: nothing new to allocate
            try:
                done = await self.vips.ensure(mesh, demand.hostnames(), current)
            except Exhausted as e:
                if self._vip_problems.get(mesh) != str(e):
                    log.error("%s", e)
                self._vip_problems[mesh] = str(e)
                self._vips_ensured[mesh] = (demand, current)
                continue
            except NotFound:  # the mesh was deleted meanwhile: its event follows
                continue
            self._vip_problems.pop(mesh, None)
            if done.written and done.resource is not None:
                self.mirror.upsert_vips(done.resource)
                written += 1
            self._vips_ensured[mesh] = (demand, done.resource)
        return written

    def vip_problem(self, mesh: str) -> str | None:
        """Why some names of ``mesh`` have no VIP (the CIDR is too small), if so."""
        return self._vip_problems.get(mesh)

    def names_report(self, mesh: str) -> NamesReport | None:
        """What ``mesh``'s names are here (for inspection); None if the mesh does not exist."""
        view = self.views.view(mesh)
        demand = self.views.demand(mesh)
        if view is None or demand is None:
            return None
        problem = self.vip_problem(mesh)
        waiting = sorted(demand.hostnames() - {n.hostname for n in view.names})
        return NamesReport(
            names=view.names,
            allocation=self.mirror.vips.get(mesh),
            cidr=self.vips.cidr,
            problems=demand.problems + ((problem,) if problem else ()),
            unallocated=tuple(waiting),
        )

    async def publish_available_services(self) -> int:
        """See ``AvailableServicesPublisher.publish``."""
        return await self.publisher.publish()

    # --- streams ----------------------------------------------------------------------------------

    def ensure(self, node: NodeId, kind: ProxyKind | None = None) -> bool:
        """Generate ``node``'s snapshot now (a stream just opened). False if its resource is unknown, or
        while the store is still being loaded (the first pass then generates it, as its stream watches)."""
        kind = kind or ProxyKind.of(node.type)
        if node.mesh is None:
            self.zone_proxies.add(node)
            return self.loaded and self.zone_proxies.generate(node)
        self.sidecars.kinds[str(node)] = kind
        if not self.loaded:
            return False
        view = self.views.view(node.mesh)
        if view is None or node.name not in view.index.dataplanes:
            return False
        self.sidecars.regenerate(view, node.name)
        return True

    def forget(self, node: NodeId) -> None:
        """The node's last stream closed: drop its snapshot (regenerated on reconnect)."""
        if node.mesh is None:
            self.zone_proxies.forget(node)
        else:
            self.sidecars.forget_node(node.mesh, node.name)
        self.identities.forget(str(node))
        self._writer.cache.clear(str(node))

    # --- the pass ---------------------------------------------------------------------------------

    def flush(self, events: int = 0, started: float | None = None) -> PassStats:
        """Run a pass now over whatever is marked (``events``: how many store events it covers)."""
        t0 = started if started is not None else time.perf_counter()
        marks = self.mirror.marks
        touched = marks.touched()
        if touched:
            marks.zone_proxies = True
        generated = unchanged = patched = 0
        for mesh in sorted(touched):
            g, u, p = self._bring_up_to_date(mesh)
            generated, unchanged, patched = generated + g, unchanged + u, patched + p
        if marks.zone_proxies:
            generated += self.zone_proxies.generate_all()
        marks.clear_pass()
        for mesh in sorted(touched):
            if self.views.builds(mesh) >= REBASE_EVERY:
                self.sidecars.rebase(mesh)
        self.views.end_pass()
        self.passes += 1
        self.generated_total += generated
        stats = PassStats(events, len(touched), generated, unchanged, time.perf_counter() - t0, patched)
        self.last_pass = stats
        if generated:
            log.debug("reconcile pass: %s", stats)
        return stats

    def _bring_up_to_date(self, mesh: str) -> tuple[int, int, int]:
        """The marked proxies of ``mesh``: (generated, unchanged, of which patched)."""
        marks = self.mirror.marks
        view = self.views.view(mesh)
        names: set[str] = set()
        if mesh in marks.meshes:
            names.update(self.mirror.dataplanes.get(mesh, {}))
        if mesh in marks.services and view is not None:
            names.update(dependents(view, marks.services[mesh]))
        if view is not None and self.views.names_changed(mesh):
            for dp in view.dataplanes:
                if dp.spec.networking.transparent_proxying is not None:
                    marks.mark_node(mesh, dp.name)  # in full: the fast path keeps the old names
                    names.add(dp.name)
        names.update(marks.nodes.get(mesh, ()))
        generated = unchanged = patched = 0
        for name in sorted(names):
            nid = dataplane_node_id(mesh, name)
            if not self._writer.interested(nid):
                continue
            if view is None or name not in view.index.dataplanes:
                self._writer.cache.clear(nid)
                continue
            fast = None if marks.node_changed(mesh, name) else self.sidecars.patch_endpoints(view, nid, name)
            if fast is None:
                fast_or_full = self.sidecars.generate(view, nid, name)
            else:
                fast_or_full = fast
                patched += fast
            if fast_or_full:
                generated += 1
            else:
                unchanged += 1
        return generated, unchanged, patched

    # --- introspection ----------------------------------------------------------------------------

    def config_error(self, nid: str) -> str | None:
        """Why proxy ``nid`` gets no (new) configuration, if something stops it: its Dataplane is kept
        out of generation (``StoreMirror.refused``) or its last generation failed (``SidecarConfigs.errors``)."""
        try:
            node = NodeId.parse(nid)
        except ValueError:
            return None
        if node.mesh is not None:
            refused = self.mirror.refused.get((node.mesh, node.name))
            if refused is not None:
                return f"its Dataplane is left out: {refused}"
        return self.sidecars.errors.get(nid)

    def held_views(self) -> int:
        """See ``SidecarConfigs.held_views``."""
        return self.sidecars.held_views()

    def egress_view(self, name: str) -> EgressView | None:
        """What zone egress ``name`` routes now (for inspection); None if unknown."""
        return self.zone_proxies.egress_view(name)

    def dataplanes(self, mesh: str | None = None) -> Iterable[Resource[DataplaneSpec]]:
        return self.mirror.all_dataplanes(mesh)
