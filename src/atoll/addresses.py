"""Facts about network addresses that several layers need, in one place.

``is_loopback_host`` answers whether a peer address (as a server sees it: ``request.client.host``,
a gRPC peer's host) is a loopback address. IPv4 clients of a dual-stack listener (``--api-host ::``)
appear as IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``); those count by the IPv4 address they
map. Anything that is not an IP address (a Unix socket path, a test client's name, ``None``) is not
loopback. ``parse_cidr`` reads a range such as ``240.0.0.0/4`` (the VIP range option and the
allocator read it alike). Pure: no I/O, imports only the standard library.

The transparent proxy's fixed addresses are here too, because the iptables rules (``atoll.dp``) and
the Envoy config (``atoll.xds.generate``) must agree on them: ``TPROXY_DNS_PORT`` (where Envoy's DNS
listener answers the queries redirected from port 53) and ``INBOUND_PASSTHROUGH_SOURCE`` (the source
address of Envoy's inbound passthrough, which the rules do not capture again).
"""

from __future__ import annotations

import ipaddress

TPROXY_DNS_PORT = 15053
INBOUND_PASSTHROUGH_SOURCE = "127.0.0.6"


def is_loopback_host(host: str | None) -> bool:
    """True when ``host`` is a loopback IP address, IPv4-mapped IPv6 included (``::ffff:127.0.0.1``)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidr(cidr: str) -> Network:
    """The network of ``cidr`` (host bits allowed); ``ValueError`` naming it if it is not one."""
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise ValueError(f'"{cidr}" is not a CIDR such as 240.0.0.0/4') from None
