"""Who is on the other end of a gRPC stream, and how much an unauthenticated peer may hold (ADS and KDS).

``peer_host(context.peer())`` is the address part of gRPC's peer string (``ipv4:10.0.0.7:51234`` ->
``10.0.0.7``, ``ipv6:[::1]:5`` -> ``::1``); ``is_loopback_peer`` tells a peer on this host (127.0.0.0/8,
``::1``, IPv4-mapped loopback, a Unix socket) from a remote one.

``PeerGate`` bounds what a peer can pin before it has authenticated: at most ``pending_per_peer`` streams
per peer address may be waiting for their first message or for their authentication at once (the next
is refused with ``RESOURCE_EXHAUSTED``), and each must send its first message within
``first_message_timeout`` seconds (see the servers). Loopback peers are exempt from the count by default
(a process on the CP's host can do worse than open streams, and benchmarks run thousands of proxies on
loopback). ``admit(peer)`` counts a stream in and answers whether it may proceed; ``release(peer)``
counts it out, exactly once, when it authenticated or ended. Authenticated streams cost nothing here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


def peer_host(peer: str | None) -> str:
    """The address of a gRPC peer string (``ipv4:1.2.3.4:5`` -> ``1.2.3.4``); the string if unknown."""
    if not peer:
        return ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = rest.rpartition(":")[0] or rest
        return host.strip("[]").split("%", 1)[0]
    return peer


def is_loopback_peer(peer: str | None) -> bool:
    """True for a peer on this host: a loopback address or a Unix socket."""
    if peer is not None and peer.startswith("unix"):
        return True
    try:
        address = ipaddress.ip_address(peer_host(peer))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@dataclass(slots=True)
class PeerGate:
    """Counts the not-yet-authenticated streams of each peer address (see the module docstring)."""

    pending_per_peer: int = 64
    first_message_timeout: float = 10.0
    exempt_loopback: bool = True
    _pending: dict[str, int] = field(default_factory=dict, repr=False)

    def admit(self, peer: str | None) -> bool:
        """Count one more pending stream of ``peer``; False (and not counted) if it is over the limit."""
        host = peer_host(peer)
        count = self._pending.get(host, 0)
        if count >= self.pending_per_peer and not (self.exempt_loopback and is_loopback_peer(peer)):
            return False
        self._pending[host] = count + 1
        return True

    def release(self, peer: str | None) -> None:
        """One pending stream of ``peer`` authenticated or ended."""
        host = peer_host(peer)
        count = self._pending.get(host, 0) - 1
        if count > 0:
            self._pending[host] = count
        else:
            self._pending.pop(host, None)

    def pending(self, peer: str | None) -> int:
        return self._pending.get(peer_host(peer), 0)


__all__ = ["PeerGate", "is_loopback_peer", "peer_host"]
