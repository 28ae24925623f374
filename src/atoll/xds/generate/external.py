"""The cluster that reaches an ExternalService at its own address (pure).

Used by a sidecar that reaches the service directly (no egress routing) and by a zone egress that
originates to it. ``host:port`` becomes a STATIC cluster for an IP address, STRICT_DNS for a name;
with ``networking.tls.enabled`` the cluster originates TLS (``tls.external_tls_context``: SNI, CA,
hostname check, renegotiation), so a wrong CA shows in the cluster's ``ssl.fail_verify_*`` stats and
as connect failures. HTTP/2 and gRPC services speak HTTP/2 upstream.
"""

from __future__ import annotations

import ipaddress

from envoy.config.cluster.v3 import cluster_pb2

from atoll.topology import ExternalView
from atoll.xds.generate import envoy as e
from atoll.xds.generate import tls

__all__ = ["UnsupportedExternal", "external_cluster"]


class UnsupportedExternal(ValueError):
    """An ExternalService setting Atoll cannot turn into proxy config (named in the message)."""


def external_cluster(name: str, ext: ExternalView) -> cluster_pb2.Cluster:
    if ext.tls is not None and ext.tls.ca_secret is not None:
        raise UnsupportedExternal(
            f'ExternalService "{ext.service}" (mesh "{ext.mesh}"): networking.tls.caCert.secret is not '
            "supported; give the CA inline, inlineString or as a file"
        )
    host = ext.host.strip("[]")
    cluster = e.static_cluster(name, host, ext.port, protocol=ext.protocol)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        cluster.type = cluster_pb2.Cluster.STRICT_DNS
        cluster.dns_lookup_family = cluster_pb2.Cluster.V4_PREFERRED
    if ext.tls is not None:
        cluster.transport_socket.CopyFrom(tls.transport_socket(tls.external_tls_context(ext)))
    return cluster
