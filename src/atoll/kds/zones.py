"""Global's registry of connected zones: which CP instance holds each zone, and since when.

A zone may be served by one zone CP instance at a time. Every KDS stream a zone opens is counted in
with ``ZoneRegistry.claim(zone, instance, version)`` once it has authenticated, and counted out with
``release(session)`` exactly once when it ends. ``claim`` refuses (``ZoneRejected`` with
``ALREADY_EXISTS``, naming the instance that holds the zone) a stream from another instance while the
zone has any stream open; the same instance reconnecting, or any instance once the zone went offline,
is accepted and (re)starts the zone's ``ZoneSession``. A session outlives its streams: after the last
one ends it keeps ``disconnected_at`` and the sync times and errors, for ``zones+insights``.

The registry is in memory and per process; its methods are synchronous and run on the event loop, so
a claim and a release never interleave.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from atoll.errors import AtollError


class ZoneRejected(AtollError):
    """A zone's stream is refused; ``code`` is the gRPC status to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class ZoneSession:
    """What global knows about one zone's connection (kept after it disconnects)."""

    zone: str
    instance: str
    version: str
    connected_since: float
    streams: int = 0
    disconnected_at: float | None = None
    last_global_to_zone: float | None = None  # last ACK from the zone
    last_zone_to_global: float | None = None  # last batch from the zone applied
    last_error: str | None = None
    nacks: int = 0

    @property
    def online(self) -> bool:
        return self.streams > 0


class ZoneRegistry:
    """Connected zones, for refusing a second CP and for ``zones+insights``. In memory, per process."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._sessions: dict[str, ZoneSession] = {}

    def claim(self, zone: str, instance: str, version: str) -> ZoneSession:
        """Count one more stream of ``zone`` from ``instance``; ``ZoneRejected`` if another holds it."""
        cur = self._sessions.get(zone)
        if cur is not None and cur.online and cur.instance != instance:
            raise ZoneRejected(
                grpc.StatusCode.ALREADY_EXISTS,
                f'zone "{zone}" is already connected from control plane instance {cur.instance}; '
                f"instance {instance} is refused (two control planes may not claim one zone)",
            )
        if cur is None or not cur.online:
            cur = ZoneSession(zone, instance, version, connected_since=self._clock())
            self._sessions[zone] = cur
        cur.streams += 1
        return cur

    def release(self, session: ZoneSession) -> None:
        session.streams = max(0, session.streams - 1)
        if session.streams == 0:
            session.disconnected_at = self._clock()

    def session(self, zone: str) -> ZoneSession | None:
        return self._sessions.get(zone)

    def sessions(self) -> list[ZoneSession]:
        """Every zone's session, connected or not."""
        return list(self._sessions.values())

    def online(self, zone: str) -> bool:
        s = self._sessions.get(zone)
        return s is not None and s.online

    def now(self) -> float:
        return self._clock()


__all__ = ["ZoneRegistry", "ZoneRejected", "ZoneSession"]
