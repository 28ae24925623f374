"""The transparent proxy's Envoy listeners and clusters (pure): capture, passthrough and DNS.

iptables (``atoll dp install transparent-proxy``) sends a transparent-proxied workload's outbound
TCP to ``TransparentView.outbound_port``, its inbound TCP to ``inbound_port`` and its DNS queries
to ``dns_port``. Envoy takes them with:

- ``capture:outbound`` on ``0.0.0.0:<outbound_port>`` with ``use_original_dst``: Envoy looks up the
  listener whose address is the connection's original destination (read with ``SO_ORIGINAL_DST``)
  and hands the connection over. Every captured outbound (``VIP:port`` of the names table) is such a
  listener, configured exactly like an explicit outbound but not bound to a port (``unbound``), so
  policies, routes and the endpoint fast path work the same. A destination no listener has stays on
  the capture listener, whose one chain sends it to ``passthrough:outbound``: an ``ORIGINAL_DST``
  cluster (straight to where the application meant to go) when the Mesh allows passthrough, a
  cluster without endpoints (the connection is closed) when ``networking.outbound.passthrough`` is
  false. We chose per-VIP listeners over one listener with a filter chain per ``VIP:port`` (what the
  issue sketched) because each captured outbound is then the same memoized, shared message as an
  explicit one would be, and a names-table change replaces only the listeners that changed.
- ``capture:inbound`` on ``0.0.0.0:<inbound_port>``, the same way in front of the inbound listeners
  (also unbound); a port no inbound serves is passed through to the original destination from
  ``INBOUND_PASSTHROUGH_SOURCE`` (``127.0.0.6``), which the iptables rules do not capture again.
- ``dns:<dns_port>``: a UDP listener on ``127.0.0.1:<dns_port>`` with Envoy's DNS filter. Its table
  (``TransparentView.dns``: ``<service>.mesh`` and VirtualOutbound hostnames -> VIP, answered with
  a TTL of ``dns_ttl`` seconds; AAAA gets an empty answer) comes in this listener, over the same ADS
  stream as the rest, so a new name is served as soon as its listener arrives. Any other name is
  resolved by the filter's c-ares client with the host's (the network namespace's)
  ``/etc/resolv.conf`` resolvers: the proxy's uid is exempt from the DNS redirect, so those queries
  leave untouched.

Every builder is memoized on the (frozen) ``TransparentView``: all transparent-proxied proxies of a
mesh share these messages. Never mutate their results.
"""

from __future__ import annotations

import functools

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, extension_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.data.dns.v3 import dns_table_pb2
from envoy.extensions.filters.udp.dns_filter.v3 import dns_filter_pb2
from envoy.extensions.network.dns_resolver.cares.v3 import cares_dns_resolver_pb2
from google.protobuf import wrappers_pb2

from atoll.addresses import INBOUND_PASSTHROUGH_SOURCE
from atoll.topology.transparent import TransparentView
from atoll.xds.generate import envoy as e

__all__ = [
    "DNS_FILTER",
    "INBOUND_CAPTURE",
    "INBOUND_PASSTHROUGH",
    "OUTBOUND_CAPTURE",
    "OUTBOUND_PASSTHROUGH",
    "capture_listeners",
    "dns_listener_name",
    "passthrough_clusters",
    "unbound",
]

OUTBOUND_CAPTURE = "capture:outbound"
INBOUND_CAPTURE = "capture:inbound"
OUTBOUND_PASSTHROUGH = "passthrough:outbound"
INBOUND_PASSTHROUGH = "passthrough:inbound"
DNS_FILTER = "envoy.filters.udp.dns_filter"
_CARES = "envoy.network.dns_resolver.cares"
_ANY = "0.0.0.0"
_DNS_ADDRESS = "127.0.0.1"


def dns_listener_name(port: int) -> str:
    return f"dns:{port}"


def unbound(listener: listener_pb2.Listener) -> None:
    """Make ``listener`` take only connections handed over by a capture listener (no port bound)."""
    listener.bind_to_port.CopyFrom(wrappers_pb2.BoolValue(value=False))


@functools.lru_cache(maxsize=256)
def capture_listeners(view: TransparentView) -> tuple[listener_pb2.Listener, ...]:
    """The outbound and inbound capture listeners and the DNS listener."""
    return (
        _capture(OUTBOUND_CAPTURE, view.outbound_port, base_pb2.OUTBOUND, OUTBOUND_PASSTHROUGH),
        _capture(INBOUND_CAPTURE, view.inbound_port, base_pb2.INBOUND, INBOUND_PASSTHROUGH),
        _dns_listener(view),
    )


@functools.lru_cache(maxsize=16)
def passthrough_clusters(view: TransparentView) -> tuple[cluster_pb2.Cluster, ...]:
    """Where captured connections to unknown destinations go (see the module docstring)."""
    outbound = _original_dst(OUTBOUND_PASSTHROUGH) if view.passthrough else e.blackhole_cluster(OUTBOUND_PASSTHROUGH)
    inbound = _original_dst(INBOUND_PASSTHROUGH)
    inbound.upstream_bind_config.CopyFrom(address_pb2.BindConfig(source_address=_source(INBOUND_PASSTHROUGH_SOURCE)))
    return (inbound, outbound)


def _source(address: str) -> address_pb2.SocketAddress:
    return address_pb2.SocketAddress(address=address, port_value=0)


def _capture(name: str, port: int, direction: int, cluster: str) -> listener_pb2.Listener:
    listener = e.listener(
        name, _ANY, port, direction=direction, filters=[e.tcp_proxy_filter(e.stat_name("", name), cluster)]
    )
    listener.use_original_dst.CopyFrom(wrappers_pb2.BoolValue(value=True))
    return listener


def _original_dst(name: str) -> cluster_pb2.Cluster:
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.ORIGINAL_DST,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
        connect_timeout=e.duration(e.CONNECT_TIMEOUT_SECONDS),
    )


def _dns_listener(view: TransparentView) -> listener_pb2.Listener:
    ttl = e.duration(view.dns_ttl)
    table = dns_table_pb2.DnsTable(
        virtual_domains=[
            dns_table_pb2.DnsTable.DnsVirtualDomain(
                name=hostname,
                endpoint=dns_table_pb2.DnsTable.DnsEndpoint(
                    address_list=dns_table_pb2.DnsTable.AddressList(address=[vip])
                ),
                answer_ttl=ttl,
            )
            for hostname, vip in view.dns
        ]
    )
    resolver = extension_pb2.TypedExtensionConfig(
        name=_CARES, typed_config=e.pack(cares_dns_resolver_pb2.CaresDnsResolverConfig())
    )
    config = dns_filter_pb2.DnsFilterConfig(
        stat_prefix="dns",
        server_config=dns_filter_pb2.DnsFilterConfig.ServerContextConfig(inline_dns_table=table),
        client_config=dns_filter_pb2.DnsFilterConfig.ClientContextConfig(
            resolver_timeout=e.duration(5), typed_dns_resolver_config=resolver, max_pending_lookups=256
        ),
    )
    address = address_pb2.Address(
        socket_address=address_pb2.SocketAddress(
            address=_DNS_ADDRESS, port_value=view.dns_port, protocol=address_pb2.SocketAddress.UDP
        )
    )
    return listener_pb2.Listener(
        name=dns_listener_name(view.dns_port),
        address=address,
        listener_filters=[listener_components_pb2.ListenerFilter(name=DNS_FILTER, typed_config=e.pack(config))],
    )
