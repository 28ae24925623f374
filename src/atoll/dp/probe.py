"""Service probes: is each inbound's workload up? Readiness transitions go to the CP as health reports.

Three parts, from pure to I/O:

- ``ProbeState`` is a pure state machine per inbound: results in (``observe(ok)``), transitions out
  (the new readiness, or ``None`` when nothing changed). An inbound starts unready; ``healthyThreshold``
  consecutive successes make it ready, ``unhealthyThreshold`` consecutive failures make it unready.
- ``inbound_targets`` turns the Dataplane's inbounds into what to probe: an inbound with ``serviceProbe``
  (or any inbound, with ``probe_all``) is probed by TCP connect to ``serviceAddress`` (default
  127.0.0.1) : ``servicePort`` (default the inbound port); ``health.ready: false`` pins it unready; the
  rest are ready as written.
- ``HealthReporter`` keeps the latest readiness per inbound port and posts the whole set to
  ``POST {cp}/dp/health`` whenever it changed (coalescing bursts; the newest state always wins),
  retrying failures with backoff. ``run_probes`` probes every target once, asks for the first report,
  then probes each target on its interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from atoll.dp.cp_client import CpError, HealthReport, InboundHealth, client, post_health
from atoll.resources import Resource
from atoll.resources.base import parse_duration

log = logging.getLogger("atoll.dp")

DEFAULT_SERVICE_ADDRESS = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """Probe timing and thresholds, in seconds and consecutive results."""

    interval: float = 1.0
    timeout: float = 1.0
    healthy_threshold: int = 1
    unhealthy_threshold: int = 1

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError("probe interval and timeout must be positive")
        if self.healthy_threshold < 1 or self.unhealthy_threshold < 1:
            raise ValueError("probe thresholds must be at least 1")

    @classmethod
    def from_service_probe(cls, probe: Any) -> ProbeSpec:
        """From a Dataplane ``serviceProbe`` block (``None`` gives the defaults)."""
        if probe is None:
            return cls()
        return cls(
            interval=parse_duration(probe.interval) if probe.interval else 1.0,
            timeout=parse_duration(probe.timeout) if probe.timeout else 1.0,
            healthy_threshold=probe.healthy_threshold or 1,
            unhealthy_threshold=probe.unhealthy_threshold or 1,
        )


class ProbeState:
    """Readiness of one inbound from its consecutive probe results (pure, no I/O)."""

    def __init__(self, spec: ProbeSpec, *, ready: bool = False) -> None:
        self.spec = spec
        self.ready = ready
        self._successes = 0
        self._failures = 0

    def observe(self, ok: bool) -> bool | None:
        """Feed one probe result; the new readiness if it changed, else ``None``."""
        if ok:
            self._successes += 1
            self._failures = 0
            if not self.ready and self._successes >= self.spec.healthy_threshold:
                self.ready = True
                return True
        else:
            self._failures += 1
            self._successes = 0
            if self.ready and self._failures >= self.spec.unhealthy_threshold:
                self.ready = False
                return False
        return None


@dataclass(frozen=True, slots=True)
class InboundTarget:
    """One inbound as the agent sees it: reported by ``port``; probed when ``probe`` is set."""

    port: int
    service_address: str
    service_port: int
    probe: ProbeSpec | None
    ready: bool  # the static readiness of an unprobed inbound

    @property
    def probed(self) -> bool:
        return self.probe is not None


def inbound_targets(resource: Resource[Any], *, probe_all: bool = False) -> list[InboundTarget]:
    """The Dataplane's inbounds (those with a port) as probe targets."""
    networking = getattr(resource.spec, "networking", None)
    out: list[InboundTarget] = []
    for ib in getattr(networking, "inbound", None) or []:
        if ib.port is None:
            continue
        pinned_unready = ib.health is not None and not ib.health.ready
        probe: ProbeSpec | None = None
        if not pinned_unready and (ib.service_probe is not None or probe_all):
            probe = ProbeSpec.from_service_probe(ib.service_probe)
        out.append(
            InboundTarget(
                port=ib.port,
                service_address=ib.service_address or DEFAULT_SERVICE_ADDRESS,
                service_port=ib.service_port or ib.port,
                probe=probe,
                ready=not pinned_unready,
            )
        )
    return out


async def tcp_check(host: str, port: int, connect_timeout: float) -> bool:
    """True if a TCP connection to ``host:port`` opens within ``connect_timeout`` seconds."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), connect_timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class HealthReporter:
    """Latest readiness per inbound port; posts the full set to the CP whenever it changed."""

    def __init__(
        self,
        cp_url: str,
        *,
        mesh: str | None,
        name: str,
        token: str | None,
        initial: Mapping[int, bool],
        retry_initial: float = 0.2,
        retry_max: float = 5.0,
    ) -> None:
        self.cp_url = cp_url
        self.mesh = mesh
        self.name = name
        self.token = token
        self._state: dict[int, bool] = dict(initial)
        self._dirty = asyncio.Event()
        self._idle = asyncio.Event()
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.sent: list[HealthReport] = []

    @property
    def state(self) -> Mapping[int, bool]:
        return dict(self._state)

    def set(self, port: int, ready: bool) -> None:
        """Record one inbound's readiness; a change schedules a report. Never blocks."""
        if self._state.get(port) != ready:
            self._state[port] = ready
            self._idle.clear()
            self._dirty.set()

    def request_report(self) -> None:
        """Schedule a report even if nothing changed (the first one after start)."""
        self._idle.clear()
        self._dirty.set()

    async def wait_sent(self, within: float) -> bool:
        """Wait until every state recorded so far was reported (at most ``within`` s); True if it was."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True

    def report(self) -> HealthReport:
        return HealthReport(
            mesh=self.mesh,
            name=self.name,
            token=self.token,
            inbounds=tuple(InboundHealth(p, r) for p, r in sorted(self._state.items())),
        )

    async def run(self, http: httpx.AsyncClient | None = None) -> None:
        """Post a report each time one is due, until cancelled."""
        own = http is None
        http = http or client(timeout=2.0)
        try:
            while True:
                if not self._dirty.is_set():
                    self._idle.set()
                await self._dirty.wait()
                self._dirty.clear()
                report = self.report()
                delay = self.retry_initial
                while True:
                    try:
                        await post_health(self.cp_url, report, http)
                    except CpError as e:
                        log.warning("health report failed (%s); retrying in %.1fs", e, delay)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, self.retry_max)
                        if self._dirty.is_set():  # newer state arrived meanwhile: send that instead
                            self._dirty.clear()
                            report = self.report()
                        continue
                    self.sent.append(report)
                    log.info(
                        "health reported: %s",
                        ", ".join(f"{i.port}={'ready' if i.ready else 'unready'}" for i in report.inbounds),
                    )
                    break
        finally:
            if own:
                await http.aclose()


async def run_probes(targets: Sequence[InboundTarget], reporter: HealthReporter) -> None:
    """Probe every probed target forever, feeding transitions to ``reporter`` (until cancelled)."""
    probed = [t for t in targets if t.probe is not None]
    states = {t.port: ProbeState(t.probe) for t in probed if t.probe is not None}
    results = await asyncio.gather(*(_check(t) for t in probed))
    for t, ok in zip(probed, results, strict=True):
        states[t.port].observe(ok)
        reporter.set(t.port, states[t.port].ready)
    reporter.request_report()
    if not probed:
        return
    async with asyncio.TaskGroup() as tg:
        for t in probed:
            tg.create_task(_probe_loop(t, states[t.port], reporter), name=f"probe-{t.port}")


async def _check(t: InboundTarget) -> bool:
    assert t.probe is not None
    return await tcp_check(t.service_address, t.service_port, t.probe.timeout)


async def _probe_loop(t: InboundTarget, state: ProbeState, reporter: HealthReporter) -> None:
    assert t.probe is not None
    while True:
        await asyncio.sleep(t.probe.interval)
        ok = await _check(t)
        change = state.observe(ok)
        if change is not None:
            log.info(
                "inbound %d (%s:%d) is now %s",
                t.port,
                t.service_address,
                t.service_port,
                "ready" if change else "unready",
            )
            reporter.set(t.port, change)
