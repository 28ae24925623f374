"""uvicorn's HTTP/1.1 protocol with the bounds it lacks against idle and slow peers (slowloris).

uvicorn (h11) arms its keep-alive timer only after a response, so a client that opens a connection
and sends its request a byte at a time — or nothing — holds the connection forever. ``guarded_h11``
returns an ``H11Protocol`` subclass (one per server: its own peer counts) that adds:

- a request deadline: from the moment a connection opens, or the first byte of a next request on a
  kept-alive one, the whole request (headers and body) must arrive within ``request_timeout``
  seconds, else the connection is closed; while the app answers, nothing is timed here;
- a per-peer limit: at most ``per_peer`` open connections from one remote address (loopback peers
  are exempt: they are this host); the next is closed at once.

uvicorn's own ``limit_concurrency`` (503 past a total) and ``timeout_keep_alive`` (idle between
requests) still apply. The per-request cost is one timer, as for uvicorn's keep-alive.
"""

from __future__ import annotations

import asyncio
import ipaddress

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_READING = (h11.IDLE, h11.SEND_BODY)


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.startswith("unix") or host == ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def guarded_h11(request_timeout: float, per_peer: int) -> type[H11Protocol]:
    """An ``H11Protocol`` class with a request deadline and a per-peer connection limit."""
    open_by_peer: dict[str, int] = {}

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _peer: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            host = self.client[0] if self.client else ""
            if not _is_loopback(host):
                if open_by_peer.get(host, 0) >= per_peer:
                    transport.close()
                    return
                open_by_peer[host] = open_by_peer.get(host, 0) + 1
                self._peer = host
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._peer is not None:
                left = open_by_peer.get(self._peer, 1) - 1
                if left > 0:
                    open_by_peer[self._peer] = left
                else:
                    open_by_peer.pop(self._peer, None)
                self._peer = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._deadline is None and self.conn.their_state is h11.IDLE:
                self._arm()  # the first bytes of a next request on a kept-alive connection
            super().data_received(data)
            if self.conn.their_state not in _READING:
                self._disarm()  # the request is in: the app's time is not bounded here

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(request_timeout, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.conn.their_state in _READING and not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol


__all__ = ["guarded_h11"]
