"""The gRPC xDS bootstrap for proxyless gRPC clients (``GRPC_XDS_BOOTSTRAP``), written by ``atoll dp grpc-bootstrap``.

gRPC reads ``xds_servers[{server_uri, channel_creds:[{type: insecure}], server_features:["xds_v3"]}]``
and ``node{id, cluster}``; the node id is ``<mesh>.<name>`` like an Envoy sidecar's, so the CP can find
the proxy's Dataplane. When the xDS generation layer provides
``atoll.xds.generate.bootstrap.grpc_xds_bootstrap(node_id=..., server_uri=..., node_cluster=..., metadata=...)``
that function is used (looked up at run time, as it is written in parallel),
so the CP and the agent agree on one shape; otherwise the same document is built here.
"""

from __future__ import annotations

import importlib
from typing import Any

from atoll.resources.proxy_id import NodeId


def grpc_bootstrap(*, server_uri: str, mesh: str, name: str, cluster: str | None = None) -> dict[str, Any]:
    """The bootstrap document for a proxyless gRPC client of ``mesh`` named ``name``."""
    nid = str(NodeId.dataplane(mesh, name))
    metadata = {"mesh": mesh, "name": name, "atoll.proxyless": "true"}  # the CP serves it API listeners
    shared = _shared_builder()
    if shared is not None:
        try:
            return dict(shared(node_id=nid, server_uri=server_uri, node_cluster=cluster or name, metadata=metadata))
        except TypeError:  # a different signature than this module was written against
            pass
    return {
        "xds_servers": [
            {
                "server_uri": server_uri,
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"],
            }
        ],
        "node": {"id": nid, "cluster": cluster or name, "metadata": metadata},
    }


def _shared_builder() -> Any:
    try:
        mod = importlib.import_module("atoll.xds.generate.bootstrap")
    except ImportError:
        return None
    return getattr(mod, "grpc_xds_bootstrap", None)
