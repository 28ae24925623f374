"""The mesh-view cache: one ``MeshView`` per mesh, rebuilt only after its inputs changed.

``MeshViews.view(mesh)`` returns the cached view, or builds it from the ``StoreMirror`` (each new view is
built incrementally from the previous one of its mesh, ``MeshView(previous=...)``). Before answering it
takes the mirror's ``stale_views`` marks, so a view is never served after a change to its inputs was
mirrored. ``reset()`` forgets every view and every previous one (used once the store is loaded: views
built from part of the store must not seed later ones).

``endpoint_delta(base, view)`` says whether two views of a mesh differ in endpoints only — same Mesh,
policies, protocols, ExternalServices and egress routing — and if so which services' endpoints changed.
It is memoized for one pass (``end_pass`` clears the memo), as every proxy of a mesh asks it for the
same pair. ``builds(mesh)`` counts views built since the last rebase of that mesh, so the sidecar
configs know when to move their untouched proxies onto the newest view.
"""

from __future__ import annotations

import logging

from atoll.proxies.reconciler.mirror import StoreMirror
from atoll.topology import Endpoint, MeshView

log = logging.getLogger(__name__)

EndpointDelta = dict[str, tuple[Endpoint, ...]]


class MeshViews:
    """The cache of mesh views over a ``StoreMirror`` (module docstring)."""

    def __init__(self, mirror: StoreMirror) -> None:
        self._mirror = mirror
        self._views: dict[str, MeshView] = {}
        self._previous: dict[str, MeshView] = {}  # the last view built per mesh, even if dropped
        self._builds: dict[str, int] = {}
        self._logged_conflicts: dict[str, tuple[str, ...]] = {}
        self._deltas: dict[int, tuple[MeshView, MeshView, EndpointDelta | None]] = {}

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
        view = MeshView(
            mesh=m,
            dataplanes=tuple(mirror.dataplanes.get(mesh, {}).values()),
            zone=mirror.zone,
            zone_ingresses=tuple(mirror.ingresses.values()),
            policies=tuple(r for (t, _), r in inputs.items() if t != "ExternalService"),
            external_services=tuple(r for (t, _), r in inputs.items() if t == "ExternalService"),
            zone_egresses=tuple(mirror.local_egresses()),
            previous=self._previous.get(mesh),
        )
        self._views[mesh] = view
        self._previous[mesh] = view
        self._builds[mesh] = self._builds.get(mesh, 0) + 1
        if view.index.conflicts and view.index.conflicts != self._logged_conflicts.get(mesh):
            for c in view.index.conflicts:
                log.warning("mesh %s: %s", mesh, c)
        self._logged_conflicts[mesh] = view.index.conflicts
        return view

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
            marks.all_views_stale = False
        if marks.stale_views:
            for mesh in marks.stale_views:
                self._views.pop(mesh, None)
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
