"""Store changes -> per-proxy xDS snapshots, event driven, regenerating only the proxies a change affects.

The reconciler keeps a mirror of what config generation reads (Meshes, Dataplanes, ZoneIngresses,
policies and other mesh-scoped inputs), fed by the store's ``watch()``: one full ``list`` at start,
then change events. Each event marks work:

- a Dataplane: that proxy, plus the proxies whose outbounds reach a service it serves (before or
  after the change) — so a change to one service never regenerates proxies that do not reach it;
- a Mesh, policy, ExternalService or VirtualOutbound: every proxy of that mesh;
- a ZoneIngress: every proxy of the meshes it lists;
- a ZoneEgress (of this zone): every proxy of every mesh (their remote and external endpoints may
  point at it), and the egress proxies.

Zone ingresses (node ``ingress:<name>``) and zone egresses (node ``egress:<name>``) belong to no mesh:
they are regenerated on every pass that touched any mesh. An egress gets one identity per mesh it
terminates mTLS for (``IdentityBook.egress_identity_for``).

Events arriving within ``window`` seconds of the first one are coalesced into one pass. A pass rebuilds
the ``MeshView`` of each touched mesh once, then, for each marked proxy that has an open stream (or a
snapshot in the cache), builds its ``ProxyView``; when the view equals the last one generated, nothing
is sent. Snapshots go to the ``SnapshotCache``, which wakes the proxy's streams.

Endpoint-only changes take a fast path. Each sidecar remembers the ``MeshView`` its last view came
from; when that mesh view and the new one differ only in endpoints (same Mesh, policies, protocols,
ExternalServices, egress routing: ``_endpoint_delta``) and the proxy's own Dataplane and identity are
unchanged, its new view is the last one with those outbounds' endpoints replaced (what ``proxy_view``
would build from the same inputs), and its new snapshot is the last one with the changed
ClusterLoadAssignments swapped in (``sidecar_endpoint_update``, ``Snapshot.replace``): no policy
matching, no listener or cluster building, no rehashing of the types that did not change. Anything
else (or a generator that says a cluster changes too) takes the full path.
Proxies a pass does not touch keep their base view; every ``REBASE_EVERY`` views built for a mesh they
are moved onto the newest one when nothing they reach changed (``_rebase``), else they forget their base
(full path next time), so old mesh views do not pile up.

Serialized resources are shared: a message object the generators share between proxies (cluster load
assignments are) is wrapped into one ``VersionedResource`` and so serialized once.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from atoll.errors import Conflict, NotFound
from atoll.pki import CaBundle
from atoll.proxies.identities import IdentityBook
from atoll.resources import Resource, get_type
from atoll.resources.codec import decode_spec
from atoll.resources.models.dataplane import DataplaneSpec
from atoll.resources.models.mesh import MeshSpec
from atoll.resources.models.zone_egress import ZoneEgressSpec
from atoll.resources.models.zone_ingress import ZoneIngressSpec
from atoll.store import ChangeEvent, EventKind, ListFilter, Store
from atoll.topology import Endpoint, Identity, MeshView, ProxyView, dependents, proxy_view, services, with_endpoints
from atoll.topology.egress import EgressView, egress_view
from atoll.topology.ingress import IngressView, available_services, ingress_view
from atoll.xds.generate import EnvoyResources, grpc_proxyless_resources, sidecar_endpoint_update, sidecar_resources
from atoll.xds.generate.egress import egress_resources
from atoll.xds.generate.ingress import ingress_resources
from atoll.xds.server import Snapshot, SnapshotCache, VersionedResource

log = logging.getLogger(__name__)

# Types whose change affects every proxy of their mesh.
CaSource = Callable[[Resource[MeshSpec]], Awaitable[CaBundle | None]]
"""Where a mesh's CA comes from: created by the CP that is its authority, or read (synced from global)."""

_MESH_WIDE_TYPES = frozenset({"ExternalService", "VirtualOutbound", "Secret"})

REBASE_EVERY = 8
"""Every this many mesh views built for a mesh, untouched proxies are moved onto the newest (``_rebase``)."""


class ProxyKind(enum.Enum):
    SIDECAR = "sidecar"
    PROXYLESS = "proxyless"
    INGRESS = "ingress"
    EGRESS = "egress"


INGRESS_PREFIX = "ingress:"
EGRESS_PREFIX = "egress:"


def egress_node_id(name: str) -> str:
    """Zone egresses belong to no mesh either: ``egress:<name>``."""
    return EGRESS_PREFIX + name


def is_zone_proxy(node: str) -> bool:
    """An ingress or egress node id (not ``<mesh>.<name>``)."""
    return node.startswith((INGRESS_PREFIX, EGRESS_PREFIX))


def ingress_node_id(name: str) -> str:
    """Zone ingresses belong to no mesh: their node id is ``ingress:<name>`` (":" is never in a name)."""
    return INGRESS_PREFIX + name


def node_id(mesh: str, name: str) -> str:
    return f"{mesh}.{name}"


def split_node_id(node: str) -> tuple[str, str]:
    """``<mesh>.<name>`` -> (mesh, name); mesh names cannot contain a dot. ``ValueError`` if malformed."""
    mesh, sep, name = node.partition(".")
    if not sep or not mesh or not name:
        raise ValueError(f'node id "{node}" is not of the form <mesh>.<name>')
    return mesh, name


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


class ProxyReconciler:
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
    ) -> None:
        self._store = store
        self._ca_source = ca_source
        self.identities = identities or IdentityBook(zone=zone)
        self._last_identity: dict[str, Identity | None] = {}
        self._cache = cache
        self._zone = zone
        self._window = window
        self._meshes: dict[str, Resource[MeshSpec]] = {}
        self._dataplanes: dict[str, dict[str, Resource[DataplaneSpec]]] = {}
        self._ingresses: dict[str, Resource[ZoneIngressSpec]] = {}
        self._egresses: dict[str, Resource[ZoneEgressSpec]] = {}
        self._logged_conflicts: dict[str, tuple[str, ...]] = {}
        self._egress_nodes: set[str] = set()
        self._last_egress: dict[str, tuple[EgressView, tuple[tuple[str, Identity], ...]]] = {}
        self._policies: dict[str, dict[tuple[str, str], Resource[Any]]] = {}
        self._views: dict[str, MeshView] = {}
        self._previous_views: dict[str, MeshView] = {}  # the last view built per mesh, even if dropped
        self._last_view: dict[str, ProxyView] = {}
        self._last_base: dict[str, MeshView] = {}  # the mesh view each proxy's last view came from
        self._fast_path = endpoint_fast_path
        self._builds: dict[str, int] = {}  # mesh views built per mesh, to rebase proxies every REBASE_EVERY
        self._deltas: dict[int, tuple[MeshView, MeshView, dict[str, tuple[Endpoint, ...]] | None]] = {}
        self._kinds: dict[str, ProxyKind] = {}
        self._ingress_nodes: set[str] = set()
        self._ingress_dirty = False
        self._last_ingress: dict[str, IngressView] = {}
        self._shared: dict[int, VersionedResource] = {}
        # marks for the next pass
        self._dirty_meshes: set[str] = set()
        self._dirty_services: dict[str, set[str]] = {}
        self._dirty_nodes: set[str] = set()
        self.ready = asyncio.Event()
        self._loaded = False  # the store has been read whole: views and generation may start
        self.last_pass: PassStats | None = None
        self.passes = 0
        self.generated_total = 0

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Load everything, then follow the store until cancelled."""
        sub = self._store.watch()
        try:
            await self._load()
            self._dirty_meshes.update(self._meshes)
            await self._refresh_cas()
            # Streams that opened while loading may have had views built from part of the store: drop
            # them. Those streams are watching by now, so this first pass generates their config.
            self._views.clear()
            self._previous_views.clear()
            self._loaded = True
            self._flush(0)
            await self.publish_available_services()
            self.ready.set()
            while True:
                due_in = self.identities.seconds_until_due()
                try:
                    first = await (anext(sub) if due_in is None else asyncio.wait_for(anext(sub), due_in + 0.01))
                except StopAsyncIteration:
                    return
                except TimeoutError:  # certificates reached their rotation point
                    for nid in self.identities.due():
                        if is_zone_proxy(nid):
                            self._last_egress.pop(nid, None)
                            self._ingress_dirty = True
                        else:
                            self._dirty_nodes.add(nid)
                    self._flush(0)
                    continue
                started = time.perf_counter()
                n = self._apply(first)
                deadline = time.monotonic() + self._window
                while True:
                    while sub.pending():
                        n += self._apply(await anext(sub))
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        ev = await asyncio.wait_for(anext(sub), remaining)
                    except TimeoutError:
                        break
                    n += self._apply(ev)
                await self._refresh_cas()
                self._flush(n, started)
                await self.publish_available_services()
        finally:
            sub.close()

    async def _refresh_cas(self) -> None:
        """Load (or, where this CP is the authority, create) the CA of every touched mesh with mTLS."""
        if self._ca_source is None:
            return
        for name in sorted(self._dirty_meshes):
            mesh = self._meshes.get(name)
            enabled = mesh is not None and mesh.spec.mtls is not None and mesh.spec.mtls.enabled() is not None
            try:
                ca = await self._ca_source(mesh) if mesh is not None and enabled else None
            except Exception:
                log.exception("cannot load the CA of mesh %s; its proxies keep their configuration", name)
                continue
            self.identities.set_ca(name, ca)

    async def _load(self) -> None:
        for r in await self._list("Mesh"):
            self._meshes[r.name] = r
        for r in await self._list("Dataplane"):
            assert r.mesh is not None
            self._dataplanes.setdefault(r.mesh, {})[r.name] = r
        for r in await self._list("ZoneIngress"):
            self._ingresses[r.name] = r
        for r in await self._list("ZoneEgress"):
            self._egresses[r.name] = r
        for rt_name in self._mesh_wide_type_names():
            for r in await self._list(rt_name):
                assert r.mesh is not None
                self._policies.setdefault(r.mesh, {})[(r.type, r.name)] = r

    async def _list(self, type_name: str) -> list[Resource[Any]]:
        out: list[Resource[Any]] = []
        offset: int | None = 0
        while offset is not None:
            page = await self._store.list(ListFilter(type=type_name), offset=offset, limit=1000)
            out.extend(page.items)
            offset = page.next_offset
        return out

    @staticmethod
    def _mesh_wide_type_names() -> list[str]:
        from atoll.resources import all_types

        return [t.name for t in all_types() if t.policy or t.name in _MESH_WIDE_TYPES]

    # --- marking --------------------------------------------------------------------------------

    def _apply(self, ev: ChangeEvent) -> int:
        r = ev.resource
        deleted = ev.kind is EventKind.DELETED
        if r.type == "Mesh":
            if deleted:
                self._meshes.pop(r.name, None)
            else:
                self._meshes[r.name] = r
            self._views.pop(r.name, None)
            self._dirty_meshes.add(r.name)
        elif r.type == "Dataplane":
            assert r.mesh is not None
            self.upsert_dataplane(r, deleted=deleted)
        elif r.type == "ZoneEgress":
            if deleted:
                self._egresses.pop(r.name, None)
            else:
                self._egresses[r.name] = r
            self._views.clear()
            self._dirty_meshes.update(self._meshes)
            self._ingress_dirty = True
        elif r.type == "ZoneIngress":
            self._ingress_dirty = True
            old = self._ingresses.get(r.name)
            if deleted:
                self._ingresses.pop(r.name, None)
            else:
                self._ingresses[r.name] = r
            for ing in (old, None if deleted else r):
                if ing is not None:
                    for av in ing.spec.available_services or ():
                        if av.mesh:
                            self._views.pop(av.mesh, None)
                            self._dirty_services.setdefault(av.mesh, set()).update([av.tags.get("kuma.io/service", "")])
        else:
            rt = get_type(r.type)
            if (rt.policy or r.type in _MESH_WIDE_TYPES) and r.mesh is not None:
                bucket = self._policies.setdefault(r.mesh, {})
                if deleted:
                    bucket.pop((r.type, r.name), None)
                else:
                    bucket[(r.type, r.name)] = r
                self._views.pop(r.mesh, None)
                self._dirty_meshes.add(r.mesh)
            else:
                return 0
        return 1

    def upsert_dataplane(self, r: Resource[DataplaneSpec], *, deleted: bool = False) -> None:
        """Mirror a Dataplane change (from the store's events, or written by the lifecycle just now)."""
        assert r.mesh is not None
        bucket = self._dataplanes.setdefault(r.mesh, {})
        old = bucket.get(r.name)
        if deleted:
            if old is None:
                return
            del bucket[r.name]
            nid = node_id(r.mesh, r.name)
            self._last_view.pop(nid, None)
            self._last_base.pop(nid, None)
        else:
            if old is not None and old.meta.version >= r.meta.version and old.spec == r.spec:
                return  # already mirrored (written by the lifecycle before its event arrived)
            bucket[r.name] = r
            self._dirty_nodes.add(node_id(r.mesh, r.name))
        changed = services(r) | (services(old) if old is not None else frozenset())
        self._views.pop(r.mesh, None)
        self._dirty_services.setdefault(r.mesh, set()).update(changed)

    def upsert_egress(self, r: Resource[ZoneEgressSpec]) -> None:
        """Mirror a ZoneEgress written by the lifecycle just now (its store event follows)."""
        old = self._egresses.get(r.name)
        if old is None or old.meta.version <= r.meta.version:
            self._egresses[r.name] = r
        if old is None or old.spec != r.spec:
            self._views.clear()
            self._dirty_meshes.update(self._meshes)
        self._ingress_dirty = True

    def upsert_ingress(self, r: Resource[ZoneIngressSpec]) -> None:
        """Mirror a ZoneIngress written by the lifecycle just now (its store event follows)."""
        old = self._ingresses.get(r.name)
        if old is None or old.meta.version <= r.meta.version:
            self._ingresses[r.name] = r
        self._ingress_dirty = True

    # --- generation -----------------------------------------------------------------------------

    def ensure(self, node: str, kind: ProxyKind = ProxyKind.SIDECAR) -> bool:
        """Generate ``node``'s snapshot now (a stream just opened). False if its resource is unknown, or
        while the store is still being loaded (the first pass then generates it, as its stream watches)."""
        self._kinds[node] = kind
        if kind is ProxyKind.INGRESS:
            self._ingress_nodes.add(node)
            return self._loaded and self._generate_ingress(node)
        if kind is ProxyKind.EGRESS:
            self._egress_nodes.add(node)
            self._last_egress.pop(node, None)
            return self._loaded and self._generate_egress(node)
        if not self._loaded:
            return False  # still loading: the first pass generates it (its stream watches by then)
        mesh, name = split_node_id(node)
        view = self._mesh_view(mesh)
        if view is None or name not in view.index.dataplanes:
            return False
        self._last_view.pop(node, None)
        self._generate(view, node, name)
        return True

    def forget(self, node: str) -> None:
        """The node's last stream closed: drop its snapshot (regenerated on reconnect)."""
        self._kinds.pop(node, None)
        self._ingress_nodes.discard(node)
        self._egress_nodes.discard(node)
        self._last_egress.pop(node, None)
        self._last_identity.pop(node, None)
        self.identities.forget(node)
        self._last_view.pop(node, None)
        self._last_base.pop(node, None)
        self._cache.clear(node)

    def flush(self) -> None:
        """Run a pass now over whatever is marked (used after a direct ``upsert_dataplane``)."""
        self._flush(0)

    def _flush(self, events: int, started: float | None = None) -> None:
        t0 = started if started is not None else time.perf_counter()
        generated = unchanged = patched = 0
        touched = set(self._dirty_meshes) | set(self._dirty_services) | {split_node_id(n)[0] for n in self._dirty_nodes}
        if touched:
            self._ingress_dirty = True
        for mesh in sorted(touched):
            view = self._mesh_view(mesh)
            names: set[str] = set()
            if mesh in self._dirty_meshes:
                names.update(self._dataplanes.get(mesh, {}))
            if mesh in self._dirty_services and view is not None:
                names.update(dependents(view, self._dirty_services[mesh]))
            names.update(n.partition(".")[2] for n in self._dirty_nodes if n.partition(".")[0] == mesh)
            for name in sorted(names):
                nid = node_id(mesh, name)
                if not self._interested(nid):
                    continue
                if view is None or name not in view.index.dataplanes:
                    self._cache.clear(nid)
                    continue
                fast = self._patch_endpoints(view, nid, name) if nid not in self._dirty_nodes else None
                if fast is not None:
                    if fast:
                        generated += 1
                        patched += 1
                    else:
                        unchanged += 1
                    continue
                if self._generate(view, nid, name):
                    generated += 1
                else:
                    unchanged += 1
        if self._ingress_dirty:
            for nid in sorted(self._ingress_nodes):
                if self._generate_ingress(nid):
                    generated += 1
            for nid in sorted(self._egress_nodes):
                if self._generate_egress(nid):
                    generated += 1
        self._dirty_meshes.clear()
        self._dirty_services.clear()
        self._dirty_nodes.clear()
        for mesh in sorted(touched):
            if self._builds.get(mesh, 0) >= REBASE_EVERY:
                self._rebase(mesh)
        self._deltas.clear()
        self.passes += 1
        self.generated_total += generated
        self.last_pass = PassStats(events, len(touched), generated, unchanged, time.perf_counter() - t0, patched)
        if generated:
            log.debug("reconcile pass: %s", self.last_pass)

    def _all_mesh_views(self) -> list[MeshView]:
        return [v for m in sorted(self._meshes) if (v := self._mesh_view(m)) is not None]

    def _generate_ingress(self, nid: str) -> bool:
        name = nid.removeprefix(INGRESS_PREFIX)
        zi = self._ingresses.get(name)
        if zi is None:
            return False
        try:
            view = ingress_view(name, zi, self._all_mesh_views())
            if self._last_ingress.get(nid) == view and self._cache.get(nid) is not None:
                return False
            self._cache.set_snapshot(nid, self._snapshot(ingress_resources(view)))
        except Exception:
            log.exception("cannot generate configuration for zone ingress %s; it keeps its last configuration", name)
            return False
        self._last_ingress[nid] = view
        return True

    def _generate_egress(self, nid: str) -> bool:
        name = nid.removeprefix(EGRESS_PREFIX)
        ze = self._egresses.get(name)
        if ze is None:
            return False
        try:
            view = egress_view(name, ze, self._all_mesh_views())
            identities: dict[str, Identity] = {}
            for mesh in view.meshes:
                identity = self.identities.egress_identity_for(nid, self._meshes[mesh])
                if identity is None:
                    log.warning("mesh %s has mTLS on but no CA yet: egress %s waits for it", mesh, nid)
                else:
                    identities[mesh] = identity
            key = (view, tuple(sorted(identities.items())))
            if self._last_egress.get(nid) == key and self._cache.get(nid) is not None:
                return False
            self._cache.set_snapshot(nid, self._snapshot(egress_resources(view, identities)))
        except Exception:
            log.exception("cannot generate configuration for zone egress %s; it keeps its last configuration", name)
            return False
        self._last_egress[nid] = key
        return True

    def egress_view(self, name: str) -> EgressView | None:
        """What zone egress ``name`` routes now (for inspection); None if unknown."""
        ze = self._egresses.get(name)
        return None if ze is None else egress_view(name, ze, self._all_mesh_views())

    def local_egresses(self) -> list[Resource[ZoneEgressSpec]]:
        return [ze for _, ze in sorted(self._egresses.items()) if ze.spec.zone in (None, "", self._zone)]

    def local_ingresses(self) -> list[Resource[ZoneIngressSpec]]:
        """ZoneIngresses of this zone (not copies of other zones' synced from global)."""
        return [
            zi
            for _, zi in sorted(self._ingresses.items())
            if (zi.spec.zone in (None, "", self._zone)) and zi.meta.labels.get("kuma.io/origin") != "global"
        ]

    async def publish_available_services(self) -> int:
        """Write the current ``availableServices`` into every local ZoneIngress whose list differs.
        Returns how many were updated (a conflict is retried on the next pass)."""
        if not self._ingress_dirty:
            return 0
        self._ingress_dirty = False
        wanted = available_services(self._all_mesh_views())
        updated = 0
        for zi in self.local_ingresses():
            current = [
                a.model_dump(mode="json", by_alias=True, exclude_none=True) for a in zi.spec.available_services or ()
            ]
            if current == wanted:
                continue
            data = zi.spec_dict()
            data["availableServices"] = wanted
            try:
                spec = decode_spec(get_type("ZoneIngress"), data)
                stored = await self._store.update(zi.with_spec(spec))
            except (Conflict, NotFound):
                self._ingress_dirty = True
                continue
            self._ingresses[zi.name] = stored
            updated += 1
        return updated

    def _interested(self, nid: str) -> bool:
        return self._cache.watcher_count(nid) > 0 or self._cache.get(nid) is not None

    def _mesh_view(self, mesh: str) -> MeshView | None:
        view = self._views.get(mesh)
        if view is not None:
            return view
        m = self._meshes.get(mesh)
        if m is None:
            self._previous_views.pop(mesh, None)
            return None
        inputs = self._policies.get(mesh, {})
        view = MeshView(
            mesh=m,
            dataplanes=tuple(self._dataplanes.get(mesh, {}).values()),
            zone=self._zone,
            zone_ingresses=tuple(self._ingresses.values()),
            policies=tuple(r for (t, _), r in inputs.items() if t != "ExternalService"),
            external_services=tuple(r for (t, _), r in inputs.items() if t == "ExternalService"),
            zone_egresses=tuple(self.local_egresses()),
            previous=self._previous_views.get(mesh),
        )
        self._views[mesh] = view
        self._previous_views[mesh] = view
        self._builds[mesh] = self._builds.get(mesh, 0) + 1
        if view.index.conflicts and view.index.conflicts != self._logged_conflicts.get(mesh):
            for c in view.index.conflicts:
                log.warning("mesh %s: %s", mesh, c)
        self._logged_conflicts[mesh] = view.index.conflicts
        return view

    def _generate(self, view: MeshView, nid: str, name: str) -> bool:
        pv = proxy_view(view, name)
        kind = self._kinds.get(nid, ProxyKind.SIDECAR)
        identity: Identity | None = None
        if pv.mtls is not None and kind is not ProxyKind.PROXYLESS:
            identity = self.identities.identity_for(nid, view.mesh, view.index.dataplanes[name])
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
            snapshot = self._snapshot(res, previous=self._cache.get(nid))
            self._cache.set_snapshot(nid, snapshot)
        except Exception:
            # A local generation error: keep serving the last good snapshot, say which proxy and why.
            log.exception("cannot generate configuration for proxy %s; it keeps its last configuration", nid)
            return False
        self._last_view[nid] = pv
        self._last_base[nid] = view
        self._last_identity[nid] = identity
        return True

    # --- the endpoint-only fast path ---------------------------------------------------------------

    def _patch_endpoints(self, view: MeshView, nid: str, name: str) -> bool | None:
        """Bring sidecar ``nid`` up to ``view`` by swapping ClusterLoadAssignments into its last
        snapshot. True: patched and sent; False: nothing changed for it; None: take the full path."""
        if not self._fast_path or self._kinds.get(nid, ProxyKind.SIDECAR) is not ProxyKind.SIDECAR:
            return None
        last, base, snapshot = self._last_view.get(nid), self._last_base.get(nid), self._cache.get(nid)
        if last is None or base is None or snapshot is None:
            return None
        if base.index.dataplanes.get(name) is not view.index.dataplanes.get(name):
            return None  # its own Dataplane changed
        changed = self._endpoint_delta(base, view)
        if changed is None:
            return None
        if last.mtls is not None:
            identity = self.identities.identity_for(nid, view.mesh, view.index.dataplanes[name])
            if identity != self._last_identity.get(nid):
                return None  # a new certificate (rotation, CA change): the secrets change too
        pv = with_endpoints(last, changed)
        if pv is last:
            self._last_base[nid] = view
            return False
        clas = sidecar_endpoint_update(last, pv)
        if clas is None:
            return None
        try:
            self._cache.set_snapshot(nid, snapshot.replace(self._versioned(c) for c in clas))
        except Exception:
            log.exception("cannot update the endpoints of proxy %s; it keeps its last configuration", nid)
            return None
        self._last_view[nid] = pv
        self._last_base[nid] = view
        return True

    def _rebase(self, mesh: str) -> None:
        """Move the proxies of ``mesh`` that a pass did not touch onto its current view, so that old mesh
        views are not kept alive by them (each holds the whole mesh). A proxy whose last view is still
        what the current view gives it (only other services' endpoints changed since) is rebased; any
        other one forgets its base and takes the full path when next touched."""
        self._builds[mesh] = 0
        view = self._views.get(mesh) or self._mesh_view(mesh)
        prefix = mesh + "."
        for nid, base in list(self._last_base.items()):
            if base is view or not nid.startswith(prefix):
                continue
            name = nid[len(prefix) :]
            last = self._last_view.get(nid)
            delta = self._endpoint_delta(base, view) if view is not None else None
            if (
                last is not None
                and delta is not None
                and view is not None
                and base.index.dataplanes.get(name) is view.index.dataplanes.get(name)
                and not any(ob.service in delta for ob in last.outbounds)
            ):
                self._last_base[nid] = view
            else:
                del self._last_base[nid]

    def held_views(self) -> int:
        """How many distinct mesh views the proxies' last configurations still refer to (for tests and
        metrics: bounded by about ``REBASE_EVERY`` per mesh)."""
        return len({id(v) for v in self._last_base.values()})

    def _endpoint_delta(self, base: MeshView, view: MeshView) -> dict[str, tuple[Endpoint, ...]] | None:
        """The services whose endpoints differ from ``base`` to ``view`` (with the new endpoints), or
        None when anything else a sidecar's view reads differs too. Memoized for the pass."""
        memo = self._deltas.get(id(base))
        if memo is not None and memo[0] is base and memo[1] is view:
            return memo[2]
        delta: dict[str, tuple[Endpoint, ...]] | None = None
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

    def _snapshot(self, res: EnvoyResources, previous: Snapshot | None = None) -> Snapshot:
        items = [
            self._versioned(m)
            for group in (
                res.clusters,
                res.cluster_load_assignments,
                res.listeners,
                res.route_configurations,
                res.secrets,
            )
            for m in group
        ]
        return Snapshot.from_resources(items, previous=previous)

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

    # --- introspection --------------------------------------------------------------------------

    def dataplanes(self, mesh: str | None = None) -> Iterable[Resource[DataplaneSpec]]:
        for m, bucket in sorted(self._dataplanes.items()):
            if mesh is None or m == mesh:
                yield from bucket.values()
