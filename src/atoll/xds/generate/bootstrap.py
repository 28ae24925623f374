"""Bootstrap documents for the two kinds of xDS clients, as plain JSON-able data (pure).

``envoy_bootstrap``: an Envoy v3 bootstrap whose listeners and clusters all come over one ADS
stream (SotW ``GRPC`` or ``DELTA_GRPC``) to the control plane at ``xds_host:xds_port``. The static
cluster ``ads_cluster`` speaks HTTP/2 to the CP (STATIC for an IP address, STRICT_DNS for a host
name), over TLS checked against ``xds_tls_ca_pem`` when given. The dataplane token, when given, goes
in every ADS request's gRPC metadata as ``x-atoll-token``. Admin listens on loopback only: on
``admin_address:admin_port``, or on the Unix socket ``admin_pipe`` when given (what Kuma's ``kuma-dp``
expects: it reads the socket's path from the bootstrap and talks to Envoy's admin through it).

``grpc_xds_bootstrap``: the ``GRPC_XDS_BOOTSTRAP`` document of a proxyless gRPC client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Literal

from atoll.xds.vocabulary import TYPE_URL_PREFIX

__all__ = ["ADS_CLUSTER", "TOKEN_HEADER", "envoy_bootstrap", "grpc_xds_bootstrap"]

ADS_CLUSTER = "ads_cluster"
TOKEN_HEADER = "x-atoll-token"
_TYPE = TYPE_URL_PREFIX


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def envoy_bootstrap(
    *,
    node_id: str,
    node_cluster: str,
    xds_host: str,
    xds_port: int,
    ads: Literal["sotw", "delta"],
    admin_port: int,
    admin_address: str = "127.0.0.1",
    metadata: Mapping[str, str] | None = None,
    token: str | None = None,
    xds_tls_ca_pem: str | None = None,
    admin_pipe: str | None = None,
) -> dict[str, Any]:
    """The Envoy bootstrap of one proxy (write it as JSON and start ``envoy -c``)."""
    if ads not in ("sotw", "delta"):
        raise ValueError(f'ads must be "sotw" or "delta", got "{ads}"')
    grpc_service: dict[str, Any] = {"envoy_grpc": {"cluster_name": ADS_CLUSTER}}
    if token is not None:
        grpc_service["initial_metadata"] = [{"key": TOKEN_HEADER, "value": token}]

    ads_cluster: dict[str, Any] = {
        "name": ADS_CLUSTER,
        "type": "STATIC" if _is_ip(xds_host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADS_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": xds_host, "port_value": xds_port}}}}
                    ]
                }
            ],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _TYPE + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
    }
    if not _is_ip(xds_host):
        ads_cluster["dns_lookup_family"] = "V4_PREFERRED"
    if xds_tls_ca_pem is not None:
        tls: dict[str, Any] = {
            "@type": _TYPE + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "validation_context": {"trusted_ca": {"inline_string": xds_tls_ca_pem}},
            },
        }
        if not _is_ip(xds_host):
            tls["sni"] = xds_host
        ads_cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": tls}

    node: dict[str, Any] = {"id": node_id, "cluster": node_cluster}
    if metadata:
        node["metadata"] = {k: metadata[k] for k in sorted(metadata)}
    admin: dict[str, Any] = (
        {"pipe": {"path": admin_pipe, "mode": 0o600}}
        if admin_pipe is not None
        else {"socket_address": {"address": admin_address, "port_value": admin_port}}
    )
    return {
        "node": node,
        "admin": {"address": admin},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC" if ads == "sotw" else "DELTA_GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [grpc_service],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {"clusters": [ads_cluster]},
    }


def grpc_xds_bootstrap(
    *, node_id: str, server_uri: str, node_cluster: str = "", metadata: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The bootstrap of a proxyless gRPC client (``GRPC_XDS_BOOTSTRAP``): one insecure xDS v3 server."""
    node: dict[str, Any] = {"id": node_id}
    if node_cluster:
        node["cluster"] = node_cluster
    if metadata:
        node["metadata"] = {k: metadata[k] for k in sorted(metadata)}
    return {
        "xds_servers": [
            {"server_uri": server_uri, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}
        ],
        "node": node,
    }
