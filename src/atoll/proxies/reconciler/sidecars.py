"""Sidecar (and proxyless gRPC) snapshots: full generation, the endpoint-only fast path, rebasing.

``SidecarConfigs`` remembers, per dataplane node, the ``ProxyView`` its last snapshot was built from,
the identity it carried and the ``MeshView`` that view came from (its base).

- ``generate`` builds the proxy's view; when it equals the last one (and so does the identity) and a
  snapshot is cached, nothing is sent. Otherwise the generators run and the snapshot is set. A
  generation error keeps the last good snapshot.
- ``patch_endpoints`` is the fast path: when the base and the new mesh view differ only in endpoints
  (``MeshViews.endpoint_delta``) and the proxy's own Dataplane and identity are unchanged, the new view
  is the last one with those outbounds' endpoints replaced (what ``proxy_view`` would build), and the
  new snapshot the last one with the changed ClusterLoadAssignments swapped in
  (``sidecar_endpoint_update``, ``Snapshot.replace``). It answers None whenever the full path is needed.
- ``rebase`` moves the proxies a pass did not touch onto the newest view of their mesh when nothing
  they reach changed, else forgets their base (full path next time): a proxy's base is either a view
  whose differences to the current one it does not reach, or absent. So at most about
  ``REBASE_EVERY`` views per mesh are held.

``SnapshotWriter`` sets snapshots, wrapping generator messages into ``VersionedResource`` once: a message
object the generators share between proxies (cluster load assignments are) is serialized and hashed once.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable

from google.protobuf.message import Message

from atoll.proxies.identities import IdentityBook
from atoll.proxies.reconciler.mesh_views import MeshViews
from atoll.resources.proxy_id import ProxyType, dataplane_node_id
from atoll.topology import Identity, MeshView, ProxyView, proxy_view, reaches, with_endpoints
from atoll.xds.generate import EnvoyResources, grpc_proxyless_resources, sidecar_endpoint_update, sidecar_resources
from atoll.xds.server import Snapshot, SnapshotCache, VersionedResource

log = logging.getLogger(__name__)

REBASE_EVERY = 8
"""Every this many mesh views built for a mesh, untouched proxies are moved onto the newest (``rebase``)."""


class ProxyKind(enum.Enum):
    """How a proxy's config is generated: the ``ProxyType`` refined for dataplanes (Envoy sidecar or
    proxyless gRPC client). The value is what the inventory reports."""

    SIDECAR = "sidecar"
    PROXYLESS = "proxyless"
    INGRESS = ProxyType.INGRESS.value
    EGRESS = ProxyType.EGRESS.value

    @classmethod
    def of(cls, proxy_type: ProxyType, *, proxyless: bool = False) -> ProxyKind:
        if proxy_type is ProxyType.INGRESS:
            return cls.INGRESS
        if proxy_type is ProxyType.EGRESS:
            return cls.EGRESS
        return cls.PROXYLESS if proxyless else cls.SIDECAR


class SnapshotWriter:
    """Sets snapshots in the ``SnapshotCache``, wrapping each generator message object into one
    ``VersionedResource`` while that object lives (so a message shared between proxies is serialized once)."""

    def __init__(self, cache: SnapshotCache) -> None:
        self.cache = cache
        self._shared: dict[int, VersionedResource] = {}

    def interested(self, nid: str) -> bool:
        """Whether ``nid`` has an open stream or a cached snapshot (else it is not generated)."""
        return self.cache.watcher_count(nid) > 0 or self.cache.get(nid) is not None

    def write(self, nid: str, res: EnvoyResources, *, keep_versions: bool) -> None:
        """Set ``nid``'s snapshot to ``res``; ``keep_versions``: types that did not change keep their
        version from the cached snapshot."""
        groups = (res.clusters, res.cluster_load_assignments, res.listeners, res.route_configurations, res.secrets)
        previous = self.cache.get(nid) if keep_versions else None
        items = [self._versioned(m) for group in groups for m in group]
        self.cache.set_snapshot(nid, Snapshot.from_resources(items, previous=previous))

    def patch(self, nid: str, snapshot: Snapshot, replaced: Iterable[Message]) -> None:
        """Set ``nid``'s snapshot to ``snapshot`` with the resources ``replaced`` swapped in."""
        self.cache.set_snapshot(nid, snapshot.replace(self._versioned(m) for m in replaced))

    def _versioned(self, message: Message) -> VersionedResource:
        key = id(message)
        vr = self._shared.get(key)
        if vr is not None and vr.message is message:
            return vr
        vr = VersionedResource.of(message)
        if len(self._shared) > 50_000:
            self._shared.clear()
        self._shared[key] = vr
        return vr


class SidecarConfigs:
    """The snapshots of a zone's dataplane proxies (module docstring)."""

    def __init__(
        self, writer: SnapshotWriter, views: MeshViews, identities: IdentityBook, *, fast_path: bool = True
    ) -> None:
        self._writer = writer
        self._cache = writer.cache
        self._views = views
        self._identities = identities
        self._fast_path = fast_path
        self.kinds: dict[str, ProxyKind] = {}  # SIDECAR unless said otherwise when the stream opened
        self._last_view: dict[str, ProxyView] = {}
        self._last_identity: dict[str, Identity | None] = {}
        self._last_base: dict[str, dict[str, MeshView]] = {}  # mesh -> name -> its last view's mesh view
        self.errors: dict[str, str] = {}  # node id -> why its last generation failed

    def forget(self, mesh: str, name: str) -> None:
        """Drop what was remembered of the proxy's last view (its next one is generated in full)."""
        self._last_view.pop(dataplane_node_id(mesh, name), None)
        self._last_base.get(mesh, {}).pop(name, None)

    def forget_node(self, mesh: str, name: str) -> None:
        """The proxy's last stream closed: drop everything kept for it."""
        nid = dataplane_node_id(mesh, name)
        self.kinds.pop(nid, None)
        self._last_identity.pop(nid, None)
        self.errors.pop(nid, None)
        self.forget(mesh, name)

    def regenerate(self, view: MeshView, name: str) -> None:
        """Generate the proxy's snapshot in full now (its stream just opened)."""
        nid = dataplane_node_id(view.name, name)
        self._last_view.pop(nid, None)
        self.generate(view, nid, name)

    def generate(self, view: MeshView, nid: str, name: str) -> bool:
        """Full generation for proxy ``name`` of ``view``; True if a new snapshot was set."""
        pv = proxy_view(view, name)
        kind = self.kinds.get(nid, ProxyKind.SIDECAR)
        identity: Identity | None = None
        if pv.mtls is not None and kind is not ProxyKind.PROXYLESS:
            identity = self._identities.identity_for(nid, view.mesh, view.index.dataplanes[name])
            if identity is None:
                log.warning("mesh %s has mTLS on but no CA yet: proxy %s waits for it", view.name, nid)
                return False
        if (
            self._last_view.get(nid) == pv
            and self._last_identity.get(nid) == identity
            and self._cache.get(nid) is not None
        ):
            return False
        try:
            if kind is ProxyKind.PROXYLESS:
                res = grpc_proxyless_resources(pv)
            else:
                res = sidecar_resources(pv, identity)
            self._writer.write(nid, res, keep_versions=True)
        except Exception as e:
            # A local generation error: keep serving the last good snapshot, say which proxy and why.
            log.exception("cannot generate configuration for proxy %s; it keeps its last configuration", nid)
            self.errors[nid] = f"cannot generate its configuration ({type(e).__name__}); it keeps its last one"
            return False
        self.errors.pop(nid, None)
        self._last_view[nid] = pv
        self._last_base.setdefault(view.name, {})[name] = view
        self._last_identity[nid] = identity
        return True

    def patch_endpoints(self, view: MeshView, nid: str, name: str) -> bool | None:
        """Bring sidecar ``nid`` up to ``view`` by swapping ClusterLoadAssignments into its last
        snapshot. True: patched and sent; False: nothing changed for it; None: take the full path."""
        if not self._fast_path or self.kinds.get(nid, ProxyKind.SIDECAR) is not ProxyKind.SIDECAR:
            return None
        bases = self._last_base.get(view.name)
        last, base, snapshot = self._last_view.get(nid), bases.get(name) if bases else None, self._cache.get(nid)
        if last is None or base is None or snapshot is None:
            return None
        if base.index.dataplanes.get(name) is not view.index.dataplanes.get(name):
            return None  # its own Dataplane changed
        changed = self._views.endpoint_delta(base, view)
        if changed is None:
            return None
        if last.mtls is not None:
            identity = self._identities.identity_for(nid, view.mesh, view.index.dataplanes[name])
            if identity != self._last_identity.get(nid):
                return None  # a new certificate (rotation, CA change): the secrets change too
        assert bases is not None
        pv = with_endpoints(last, changed)
        if pv is last:
            bases[name] = view
            return False
        clas = sidecar_endpoint_update(last, pv)
        if clas is None:
            return None
        try:
            self._writer.patch(nid, snapshot, clas)
        except Exception:
            log.exception("cannot update the endpoints of proxy %s; it keeps its last configuration", nid)
            return None
        self._last_view[nid] = pv
        bases[name] = view
        return True

    def rebase(self, mesh: str) -> None:
        """Move the proxies of ``mesh`` that a pass did not touch onto its current view, so that old mesh
        views are not kept alive by them (each holds the whole mesh). A proxy whose last view is still
        what the current view gives it (only other services' endpoints changed since) is rebased; any
        other one forgets its base and takes the full path when next touched."""
        self._views.rebased(mesh)
        view = self._views.view(mesh)
        bases = self._last_base.get(mesh)
        if not bases:
            return
        for name, base in list(bases.items()):
            if base is view:
                continue
            last = self._last_view.get(dataplane_node_id(mesh, name))
            delta = self._views.endpoint_delta(base, view) if view is not None else None
            if (
                last is not None
                and delta is not None
                and view is not None
                and base.index.dataplanes.get(name) is view.index.dataplanes.get(name)
                and not any(reaches(ob, delta) for ob in last.outbounds)
            ):
                bases[name] = view
            else:
                del bases[name]

    def held_views(self) -> int:
        """How many distinct mesh views the proxies' last configurations still refer to (for tests and
        metrics: bounded by about ``REBASE_EVERY`` per mesh)."""
        return len({id(v) for bases in self._last_base.values() for v in bases.values()})
