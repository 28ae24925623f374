"""Zone ingress and zone egress snapshots, and the ``availableServices`` the CP writes for ingresses.

Zone proxies belong to no mesh: their config is built from the views of every mesh, so
``ZoneProxyConfigs.generate_all`` runs on every pass that touched any mesh (or a zone proxy). Each
proxy's last input is remembered — the ``IngressView``, or for an egress its ``EgressView`` and the
identities it holds (one per mesh it terminates mTLS for, ``IdentityBook.egress_identity_for``) — and an
unchanged input sends nothing while a snapshot is cached. A generation error keeps the last good
snapshot.

``AvailableServicesPublisher`` is the one store writer of the reconciler: after a pass that touched
zone proxies it writes the services this zone serves (``topology.ingress.available_services``) into
every local ZoneIngress whose list differs. A write that loses a race (``Conflict``/``NotFound``) leaves
the mark set, so the next pass tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from atoll.errors import Conflict, NotFound
from atoll.proxies.identities import IdentityBook
from atoll.proxies.reconciler.mesh_views import MeshViews
from atoll.proxies.reconciler.mirror import StoreMirror
from atoll.proxies.reconciler.sidecars import SnapshotWriter
from atoll.resources import Resource, get_type
from atoll.resources.codec import decode_spec
from atoll.resources.models.zone_egress import ZoneEgressSpec
from atoll.resources.models.zone_ingress import ZoneIngressSpec
from atoll.resources.proxy_id import NodeId, ProxyType
from atoll.store import Store
from atoll.topology import Identity
from atoll.topology.egress import EgressView, egress_view
from atoll.topology.ingress import IngressView, available_services, ingress_view
from atoll.xds.generate import EnvoyResources
from atoll.xds.generate.egress import egress_resources
from atoll.xds.generate.ingress import ingress_resources

log = logging.getLogger(__name__)

_EgressInput = tuple[EgressView, tuple[tuple[str, Identity], ...]]
K = TypeVar("K")
Resources = Callable[[], EnvoyResources]
"""Generation, run only when the input changed."""


def _ingress_input(name: str, zi: Resource[ZoneIngressSpec], views: MeshViews) -> tuple[IngressView, Resources]:
    view = ingress_view(name, zi, views.all())
    return view, lambda: ingress_resources(view)


class ZoneProxyConfigs:
    """The snapshots of the zone ingresses and egresses with an open stream (module docstring)."""

    def __init__(self, writer: SnapshotWriter, mirror: StoreMirror, views: MeshViews, identities: IdentityBook) -> None:
        self._writer = writer
        self._mirror = mirror
        self._views = views
        self._identities = identities
        self._nodes: dict[str, NodeId] = {}  # wire form -> id, of every connected zone proxy
        self._last_ingress: dict[str, IngressView] = {}
        self._last_egress: dict[str, _EgressInput] = {}

    def add(self, node: NodeId) -> None:
        """A zone proxy's stream opened: it is served from now on, its next generation sends."""
        nid = str(node)
        self._nodes[nid] = node
        self._last_egress.pop(nid, None)

    def forget(self, node: NodeId) -> None:
        self._nodes.pop(str(node), None)
        self._last_egress.pop(str(node), None)

    def rotated(self, node: NodeId) -> None:
        """The proxy's certificate reached its rotation point: its next generation sends."""
        self._last_egress.pop(str(node), None)

    def generate_all(self) -> int:
        """Regenerate every connected zone proxy, ingresses first; how many got a new snapshot."""
        ordered = sorted(self._nodes.items(), key=lambda kv: (kv[1].type is not ProxyType.INGRESS, kv[0]))
        return sum(self.generate(node) for _, node in ordered)

    def generate(self, node: NodeId) -> bool:
        """Regenerate one zone proxy; True if it got a new snapshot."""
        nid = str(node)
        if node.type is ProxyType.INGRESS:
            zi = self._mirror.ingresses.get(node.name)
            if zi is None:
                return False
            return self._update(nid, node, self._last_ingress, lambda: _ingress_input(node.name, zi, self._views))
        ze = self._mirror.egresses.get(node.name)
        if ze is None:
            return False
        return self._update(nid, node, self._last_egress, lambda: self._egress_input(nid, node.name, ze))

    def _egress_input(self, nid: str, name: str, ze: Resource[ZoneEgressSpec]) -> tuple[_EgressInput, Resources]:
        view = egress_view(name, ze, self._views.all())
        identities: dict[str, Identity] = {}
        for mesh in view.meshes:
            identity = self._identities.egress_identity_for(nid, self._mirror.meshes[mesh])
            if identity is None:
                log.warning("mesh %s has mTLS on but no CA yet: egress %s waits for it", mesh, nid)
            else:
                identities[mesh] = identity
        return (view, tuple(sorted(identities.items()))), lambda: egress_resources(view, identities)

    def _update(self, nid: str, node: NodeId, last: dict[str, K], inputs: Callable[[], tuple[K, Resources]]) -> bool:
        """Send a new snapshot unless the proxy's input equals its last one (and one is cached)."""
        try:
            key, resources = inputs()
            if last.get(nid) == key and self._writer.cache.get(nid) is not None:
                return False
            self._writer.write(nid, resources(), keep_versions=False)
        except Exception:
            log.exception(
                "cannot generate configuration for zone %s %s; it keeps its last configuration",
                node.type.value,
                node.name,
            )
            return False
        last[nid] = key
        return True

    def egress_view(self, name: str) -> EgressView | None:
        """What zone egress ``name`` routes now (for inspection); None if unknown."""
        ze = self._mirror.egresses.get(name)
        return None if ze is None else egress_view(name, ze, self._views.all())


class AvailableServicesPublisher:
    """Writes ``availableServices`` into this zone's ZoneIngresses (module docstring)."""

    def __init__(self, store: Store, mirror: StoreMirror, views: MeshViews) -> None:
        self._store = store
        self._mirror = mirror
        self._views = views
        self.enabled: Callable[[], bool] = lambda: True
        """False on a CP instance that is not the leader (HA): only the leader writes ``availableServices``;
        the others drop the mark (the leader's writes reach them as store events)."""

    async def publish(self) -> int:
        """Write the current ``availableServices`` into every local ZoneIngress whose list differs, if a
        pass touched zone proxies since the last call. Returns how many were updated."""
        marks = self._mirror.marks
        if not marks.zone_proxies:
            return 0
        marks.zone_proxies = False
        if not self.enabled():
            return 0
        wanted = available_services(self._views.all())
        updated = 0
        for zi in self._mirror.local_ingresses():
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
                marks.zone_proxies = True
                continue
            self._mirror.ingresses[zi.name] = stored
            updated += 1
        return updated
