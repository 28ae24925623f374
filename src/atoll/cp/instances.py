"""The instance registry component: every CP instance of a role beats in the store, and reads the others.

``InstanceRegistry`` (component ``instances``) upserts this instance's ``InstanceRecord`` every
``interval`` seconds through the store's ``Coordination`` and then reads every row of its role, so
each instance knows the others a heartbeat late at most. The record's report says: the instance's
address (its REST API), version, mode, whether it leads and in which term, and what it holds, the
live state the others need and cannot read from the resources:

- a zone (or standalone) instance: the proxies connected to it, with their insights
  (``proxies: {node id: insight}``). The leader's KDS stream sends global the insights of *every*
  instance's proxies (``held_insights``); a removal timer leaves alone a proxy another instance serves
  (``holds_proxy``);
- a global instance: the zones whose KDS streams it holds, with their sessions (``zones: {zone:
  zoneInsight}``), so every global instance answers ``/zones+insights`` and ``dataplanes+insights``
  alike whichever instance a zone's leader dialled (``atoll.cp.ha.SharedGlobalInsights``).

A change of leader is reported at once, not at the next interval. The leader prunes rows that
stopped beating for ``dead_after`` seconds and hands each one to
``on_dead`` (a zone leader gives the dead instance's proxies the removal grace: if they do not
reconnect somewhere, their Dataplanes go). A graceful stop deletes the instance's own row.

``listing()`` is what ``GET /control-planes`` and ``atoll inspect control-planes`` show. The registry
keeps answering from its last read when the store does not answer (never blocking the API);
``alive`` says whether a row's heartbeat is recent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from atoll.cp.leader import LeaderElector
from atoll.errors import StoreError
from atoll.store.coordination import Coordination, InstanceRecord

log = logging.getLogger(__name__)

Report = Callable[[], Mapping[str, Any]]
OnDead = Callable[[InstanceRecord], Awaitable[None]]


class InstanceRegistry:
    """Component: this instance's heartbeat and the last read of its role's rows (module docstring)."""

    def __init__(
        self,
        coordination: Coordination,
        elector: LeaderElector,
        *,
        role: str,
        instance_id: str,
        base: Mapping[str, Any],
        report: Report,
        interval: float = 1.0,
        dead_after: float = 10.0,
        on_dead: OnDead | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._coordination = coordination
        self._elector = elector
        self.role = role
        self.instance_id = instance_id
        self._base = dict(base)
        self._report = report
        self._interval = interval
        self._dead_after = dead_after
        self._on_dead = on_dead
        self._clock = clock
        self.started_at = clock()
        self.rows: list[InstanceRecord] = []
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._running = False
        self._failing = False
        elector.on_change(lambda leading: self._wake.set())  # a change of leader is reported at once

    @property
    def name(self) -> str:
        return "instances"

    @property
    def ready(self) -> bool:
        return self._running

    async def start(self) -> None:
        self._running = True
        try:
            while not self._stop.is_set():
                self._wake.clear()
                await self.beat()
                stop = asyncio.ensure_future(self._stop.wait())
                wake = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({stop, wake}, timeout=self._interval, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                wake.cancel()
        finally:
            self._running = False
            with contextlib.suppress(StoreError, TimeoutError):
                await asyncio.wait_for(self._coordination.remove_instance(self.instance_id), 2.0)

    async def stop(self) -> None:
        self._stop.set()

    def record(self) -> InstanceRecord:
        report = {**self._base, "leader": self._elector.is_leader, "term": self._elector.term, **self._report()}
        return InstanceRecord(self.instance_id, self.role, self.started_at, report)

    async def beat(self) -> None:
        """One heartbeat, one read, and (leading) one prune. Store errors are logged once per outage."""
        try:
            await asyncio.wait_for(self._coordination.heartbeat(self.record()), self._interval * 3)
            self.rows = await asyncio.wait_for(self._coordination.instances(self.role), self._interval * 3)
            if self._elector.is_leader:
                for dead in await self._coordination.prune(self.role, self._dead_after):
                    log.warning("CP instance %s stopped beating %.0fs ago; cleaning up after it", dead.id, dead.age)
                    if self._on_dead is not None:
                        await self._on_dead(dead)
            if self._failing:
                log.info("instance registry: the store answers again")
            self._failing = False
        except (StoreError, TimeoutError) as e:
            if not self._failing:
                log.warning("instance registry: cannot reach the store (%s); keeping the last read", e)
            self._failing = True

    # -- reading ------------------------------------------------------------------------------------

    def peers(self) -> list[InstanceRecord]:
        """The other instances whose heartbeat is recent."""
        return [r for r in self.rows if r.id != self.instance_id and r.age < self._dead_after / 2]

    def holds_proxy(self, nid: str) -> bool:
        """Another live instance serves proxy ``nid``."""
        return any(nid in _dict(r.report.get("proxies")) for r in self.peers())

    def held_insights(self) -> Iterable[tuple[str, Mapping[str, Any]]]:
        """(node id, insight) of the proxies the other live instances serve."""
        for r in self.peers():
            yield from _dict(r.report.get("proxies")).items()

    def zone_session(self, zone: str) -> Mapping[str, Any] | None:
        """The zoneInsight of ``zone`` from the live instance that holds its KDS stream, if another does."""
        for r in self.peers():
            found = _dict(r.report.get("zones")).get(zone)
            if found is not None:
                return dict(found)
        return None

    def listing(self) -> dict[str, Any]:
        """``GET /control-planes``: every registered instance of this role, this one as of now."""
        now = self._clock()
        rows = {r.id: r for r in self.rows}
        rows[self.instance_id] = self.record()
        items = [_item(r, now, alive=r.id == self.instance_id or r.age < self._dead_after / 2) for r in rows.values()]
        items.sort(key=lambda i: (i["startedAt"], i["id"]))
        leader = next((i["id"] for i in items if i["leader"] and i["alive"]), None)
        return {"role": self.role, "leader": leader, "total": len(items), "items": items}


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _item(r: InstanceRecord, now: float, *, alive: bool) -> dict[str, Any]:
    report = dict(r.report)
    return {
        "id": r.id,
        "address": report.get("address"),
        "mode": report.get("mode"),
        "zone": report.get("zone"),
        "version": report.get("version"),
        "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.started_at)),
        "uptimeSeconds": round(max(0.0, now - r.started_at), 1),
        "heartbeatAgeSeconds": round(r.age, 1),
        "alive": alive,
        "leader": bool(report.get("leader")) and alive,
        "term": report.get("term"),
        "proxies": len(_dict(report.get("proxies"))),
        "zones": len(_dict(report.get("zones"))),
    }
