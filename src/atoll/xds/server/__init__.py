"""atoll.xds.server: the ADS (xDS) server — snapshots, sans-I/O stream machines, cache, grpc.aio pump.

How it fits: the control plane builds one immutable ``Snapshot`` per proxy (from Envoy messages made by
``atoll.xds.generate``) and calls ``SnapshotCache.set_snapshot(node_id, snapshot)``. Every open stream of
that node wakes, diffs with its ``SotwStream`` / ``DeltaStream`` state machine and writes only what
changed. ``AdsServicer`` is the thin gRPC pump; ``make_server`` builds the ``grpc.aio.Server``.
"""

from atoll.errors import PeerProtocolError
from atoll.xds.server.cache import SnapshotCache
from atoll.xds.server.grpc_server import SERVER_OPTIONS, AdsServicer, StreamRejected, make_server
from atoll.xds.server.protocol import (
    DeltaResponse,
    DeltaStream,
    SotwResponse,
    SotwStream,
    XdsError,
)
from atoll.xds.server.snapshot import InconsistentSnapshot, Snapshot, VersionedResource
from atoll.xds.server.status import StreamStatus, TypeStatus
from atoll.xds.vocabulary import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE, SECRET

__all__ = [
    "CLUSTER",
    "ENDPOINT",
    "LISTENER",
    "PUSH_ORDER",
    "ROUTE",
    "SECRET",
    "SERVER_OPTIONS",
    "AdsServicer",
    "DeltaResponse",
    "DeltaStream",
    "InconsistentSnapshot",
    "PeerProtocolError",
    "Snapshot",
    "SnapshotCache",
    "SotwResponse",
    "SotwStream",
    "StreamRejected",
    "StreamStatus",
    "TypeStatus",
    "VersionedResource",
    "XdsError",
    "make_server",
]
