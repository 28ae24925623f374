"""Store changes -> per-proxy xDS snapshots, event driven, regenerating only the proxies a change affects.

The reconciler is built from parts a reader can take one at a time, each module saying its invariants:

- ``mirror``: the copy of the store generation reads, and the marks a change leaves (which proxies);
- ``mesh_views``: one ``MeshView`` per mesh, rebuilt after a change, and endpoint-only deltas;
- ``sidecars``: dataplane snapshots — full generation, the endpoint-only fast path, rebasing — and the
  shared serialization of generator messages;
- ``zone_proxies``: zone ingress and egress snapshots, and the ``availableServices`` publisher;
- ``engine``: the parts wired, and one pass over the marks;
- ``loop``: following the store with a coalescing window (``ProxyReconciler.run``).

Node ids are ``atoll.resources.proxy_id.NodeId``.
"""

from atoll.proxies.reconciler.engine import PassStats, ReconcileEngine
from atoll.proxies.reconciler.loop import ProxyReconciler
from atoll.proxies.reconciler.sidecars import REBASE_EVERY, ProxyKind

__all__ = ["REBASE_EVERY", "PassStats", "ProxyKind", "ProxyReconciler", "ReconcileEngine"]
