"""The mesh-view cache: one ``MeshView`` per mesh, rebuilt only after its inputs changed.

``MeshViews.view(mesh)`` returns the cached view, or builds it from the ``StoreMirror`` (each new view is
built incrementally from the previous one of its mesh, ``MeshView(previous=...)``). Before answering it
takes the mirror's ``stale_views`` marks, so a view is never served after a change to its inputs was
mirrored. ``reset()`` forgets every view and every previous one (used once the store is loaded: views
built from part of the store must not seed later ones).

Each view carries the mesh's names table (``MeshView.names``): ``demand(mesh)`` is what names the
mesh wants (``atoll.topology.name_demand``, from its Dataplanes' inbounds, other zones' ingresses,
ExternalServices and VirtualOutbounds), and the table is that demand with the VIPs of the mirrored
``VipAllocation``. Both are kept while equal: a Dataplane's destinations are computed once per version
of it, a demand equal to the last one is the last one (so is a table), so a change that only moves
endpoints neither renders nor allocates anything. ``names_changed(mesh)`` says (once) that a view was
built whose table differs from the previous view's: the transparent-proxied proxies need regenerating.

``endpoint_delta(base, view)`` says whether two views of a mesh differ in endpoints only — same Mesh,
policies, protocols, ExternalServices and egress routing — and if so which services' endpoints
changed. Names are left out on purpose: only transparent-proxied proxies read them, and the engine
regenerates those in full when the table changed (``names_changed``), so an instance on a new port
does not take every other proxy of the mesh off the fast path.
It is memoized for one pass (``end_pass`` clears the memo), as every proxy of a mesh asks it for the
same pair. ``builds(mesh)`` counts views built since the last rebase of that mesh, so the sidecar
configs know when to move their untouched proxies onto the newest view.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping

from atoll.proxies.reconciler.mirror import StoreMirror
from atoll.proxies.vips import vip_map
from atoll.resources import Resource
from atoll.resources.models.dataplane import DataplaneSpec
from atoll.resources.models.vip_allocation import VipAllocationSpec
from atoll.topology import Endpoint, MeshView
from atoll.topology.name_demand import Destination, NameDemand, dataplane_destinations, destinations, name_demand
from atoll.topology.service_names import NO_NAMES, ServiceNames

log = logging.getLogger(__name__)

EndpointDelta = dict[str, tuple[Endpoint, ...]]


class LocalDestinations:
    """The destinations of one mesh's local Dataplanes, kept up to date incrementally: a Dataplane's
    are computed once per version of it (``update`` only compares each Dataplane with the one seen
    last, by identity), and the set is the same object for as long as it has the same members. Equal
    destinations of several Dataplanes are one object (interned while any Dataplane has it)."""

    def __init__(self) -> None:
        self._intern: dict[Destination, Destination] = {}
        self._by_dataplane: dict[str, tuple[Resource[DataplaneSpec], tuple[Destination, ...]]] = {}
        self._counts: Counter[Destination] = Counter()
        self._set: frozenset[Destination] = frozenset()

    def update(self, dataplanes: Mapping[str, Resource[DataplaneSpec]]) -> frozenset[Destination]:
        """The destinations of ``dataplanes`` (every Dataplane of the mesh, by name)."""
        seen = self._by_dataplane
        changed = False
        for name, dp in dataplanes.items():
            hit = seen.get(name)
            if hit is not None and hit[0] is dp:
                continue
            dests = dataplane_destinations(dp, self._intern)
            seen[name] = (dp, dests)
            changed = self._count(dests, 1) or changed  # in before out: a kept destination stays interned
            if hit is not None:
                changed = self._count(hit[1], -1) or changed
        if len(seen) != len(dataplanes):
            for name in [n for n in seen if n not in dataplanes]:
                changed = self._count(seen.pop(name)[1], -1) or changed
        if changed:
            self._set = frozenset(self._counts)
        return self._set

    def _count(self, dests: tuple[Destination, ...], step: int) -> bool:
        """Count ``dests`` in (1) or out (-1); True if one became present or absent."""
        counts = self._counts
        moved = False
        for d in dests:
            n = counts[d] + step
            if n <= 0:
                del counts[d]
                self._intern.pop(d, None)
                moved = True
            else:
                moved = moved or (step > 0 and n == 1)
                counts[d] = n
        return moved


class MeshViews:
    """The cache of mesh views over a ``StoreMirror`` (module docstring)."""

    def __init__(self, mirror: StoreMirror) -> None:
        self._mirror = mirror
        self._views: dict[str, MeshView] = {}
        self._previous: dict[str, MeshView] = {}  # the last view built per mesh, even if dropped
        self._builds: dict[str, int] = {}
        self._logged_conflicts: dict[str, tuple[str, ...]] = {}
        self._deltas: dict[int, tuple[MeshView, MeshView, EndpointDelta | None]] = {}
        self._local: dict[str, LocalDestinations] = {}
        self._demand_inputs: dict[str, tuple[object, ...]] = {}
        self._demands: dict[str, NameDemand] = {}  # the current demand per mesh (dropped when stale)
        self._last_demand: dict[str, NameDemand] = {}
        self._tables: dict[str, tuple[NameDemand, Resource[VipAllocationSpec] | None, ServiceNames]] = {}
        self._names_changed: set[str] = set()

    def reset(self) -> None:
        """Forget every view, and the previous ones too."""
        self._take_stale()
        self._views.clear()
        self._previous.clear()

    def view(self, mesh: str) -> MeshView | None:
        """The current view of ``mesh``; None if the mesh does not exist."""
        self._take_stale()
        view = self._views.get(mesh)
        if view is not None:
            return view
        mirror = self._mirror
        m = mirror.meshes.get(mesh)
        if m is None:
            self._previous.pop(mesh, None)
            return None
        inputs = mirror.policies.get(mesh, {})
        names = self._table(mesh)
        previous = self._previous.get(mesh)
        if previous is not None and previous.names is not names and previous.names != names:
            self._names_changed.add(mesh)
        view = MeshView(
            mesh=m,
            dataplanes=tuple(mirror.dataplanes.get(mesh, {}).values()),
            zone=mirror.zone,
            zone_ingresses=tuple(mirror.ingresses.values()),
            policies=tuple(r for (t, _), r in inputs.items() if t != "ExternalService"),
            external_services=tuple(r for (t, _), r in inputs.items() if t == "ExternalService"),
            zone_egresses=tuple(mirror.local_egresses()),
            names=names,
            previous=previous,
        )
        self._views[mesh] = view
        self._previous[mesh] = view
        self._builds[mesh] = self._builds.get(mesh, 0) + 1
        if view.index.conflicts and view.index.conflicts != self._logged_conflicts.get(mesh):
            for c in view.index.conflicts:
                log.warning("mesh %s: %s", mesh, c)
        self._logged_conflicts[mesh] = view.index.conflicts
        return view

    def demand(self, mesh: str) -> NameDemand | None:
        """The names ``mesh`` wants now (before VIPs); None if the mesh does not exist."""
        self._take_stale()
        demand = self._demands.get(mesh)
        if demand is not None:
            return demand
        mirror = self._mirror
        if mesh not in mirror.meshes:
            self._forget_names(mesh)
            return None
        local = self._local.setdefault(mesh, LocalDestinations()).update(mirror.dataplanes.get(mesh, {}))
        policies = mirror.policies.get(mesh, {})
        externals = tuple(r for (t, _), r in sorted(policies.items()) if t == "ExternalService")
        vos = tuple(r for (t, _), r in sorted(policies.items()) if t == "VirtualOutbound")
        others = destinations(mesh, mirror.zone, (), mirror.ingresses.values(), externals)
        key = (local, others, tuple(r.spec for r in vos), tuple(r.name for r in vos))
        last = self._last_demand.get(mesh)
        if last is not None and self._demand_inputs.get(mesh) == key:
            demand = last
        else:
            demand = name_demand(local | others, vos)
            if last is not None and demand == last:
                demand = last
        self._demand_inputs[mesh] = key
        self._demands[mesh] = self._last_demand[mesh] = demand
        return demand

    def _table(self, mesh: str) -> ServiceNames:
        """The names table of ``mesh``: its demand with the mirrored VIPs (kept while equal)."""
        demand = self.demand(mesh)
        if demand is None:
            return NO_NAMES
        allocation = self._mirror.vips.get(mesh)
        last = self._tables.get(mesh)
        if last is not None and last[0] is demand and last[1] is allocation:
            return last[2]
        table = demand.table(vip_map(allocation))
        if last is not None and table == last[2]:
            table = last[2]
        self._tables[mesh] = (demand, allocation, table)
        return table

    def names_changed(self, mesh: str) -> bool:
        """Whether a view of ``mesh`` with a different names table was built since the last call."""
        if mesh in self._names_changed:
            self._names_changed.discard(mesh)
            return True
        return False

    def _forget_names(self, mesh: str) -> None:
        self._local.pop(mesh, None)
        self._demand_inputs.pop(mesh, None)
        self._demands.pop(mesh, None)
        self._last_demand.pop(mesh, None)
        self._tables.pop(mesh, None)

    def all(self) -> list[MeshView]:
        """The views of every mesh, by mesh name."""
        return [v for m in sorted(self._mirror.meshes) if (v := self.view(m)) is not None]

    def builds(self, mesh: str) -> int:
        """Views built for ``mesh`` since ``rebased(mesh)``."""
        return self._builds.get(mesh, 0)

    def rebased(self, mesh: str) -> None:
        self._builds[mesh] = 0

    def _take_stale(self) -> None:
        marks = self._mirror.marks
        if marks.all_views_stale:
            self._views.clear()
            self._demands.clear()
            marks.all_views_stale = False
        if marks.stale_views:
            for mesh in marks.stale_views:
                self._views.pop(mesh, None)
                self._demands.pop(mesh, None)
            marks.stale_views.clear()

    def endpoint_delta(self, base: MeshView, view: MeshView) -> EndpointDelta | None:
        """The services whose endpoints differ from ``base`` to ``view`` (with the new endpoints), or
        None when anything else a sidecar's view reads differs too. Memoized for the pass."""
        memo = self._deltas.get(id(base))
        if memo is not None and memo[0] is base and memo[1] is view:
            return memo[2]
        delta: EndpointDelta | None = None
        old, new = base.index, view.index
        if (
            base.zone == view.zone
            and (base.mesh is view.mesh or base.mesh == view.mesh)
            and old.protocols == new.protocols
            and old.externals == new.externals
            and old.egress_routing == new.egress_routing
            and old.egresses == new.egresses
            and old.policies == new.policies
        ):
            delta = {
                svc: new.endpoints.get(svc, ())
                for svc in old.endpoints.keys() | new.endpoints.keys()
                if old.endpoints.get(svc, ()) != new.endpoints.get(svc, ())
            }
        self._deltas[id(base)] = (base, view, delta)
        return delta

    def end_pass(self) -> None:
        """Forget the pass's memo of endpoint deltas (it holds views alive)."""
        self._deltas.clear()
