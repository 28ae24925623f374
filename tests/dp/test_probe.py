"""Service probes: the pure state machine, the inbound targets, and reports on a real backend going down/up."""

from __future__ import annotations

import asyncio

import pytest

from atoll.dp import HealthReporter, ProbeSpec, ProbeState, inbound_targets, load_proxy_resource, run_probes
from atoll.dp.probe import tcp_check
from tests.dp.support import FakeCp, HttpBackend, until
from tests.helpers import free_port


def feed(state: ProbeState, results: str) -> list[bool | None]:
    return [state.observe(c == "+") for c in results]


def test_starts_unready_and_one_success_makes_ready_by_default() -> None:
    s = ProbeState(ProbeSpec())
    assert not s.ready
    assert feed(s, "+-+") == [True, False, True]


def test_thresholds_need_consecutive_results() -> None:
    s = ProbeState(ProbeSpec(healthy_threshold=3, unhealthy_threshold=2))
    # two successes, a failure resets the count, then three in a row
    assert feed(s, "++-+++") == [None, None, None, None, None, True]
    # a single failure is not enough, an intervening success resets, then two failures
    assert feed(s, "-+--") == [None, None, None, False]
    assert not s.ready
    assert feed(s, "---") == [None, None, None]  # already unready: no transition


def test_initially_ready_state() -> None:
    s = ProbeState(ProbeSpec(unhealthy_threshold=2), ready=True)
    assert feed(s, "+-+--") == [None, None, None, None, False]


def test_spec_validation() -> None:
    with pytest.raises(ValueError):
        ProbeSpec(healthy_threshold=0)
    with pytest.raises(ValueError):
        ProbeSpec(interval=0)


DP = """\
type: Dataplane
mesh: default
name: web-1
networking:
  address: 10.0.0.1
  inbound:
    - port: 10001
      servicePort: 8001
      serviceAddress: 127.0.0.2
      serviceProbe:
        interval: 200ms
        timeout: 300ms
        healthyThreshold: 2
        tcp: {}
      tags: {kuma.io/service: a}
    - port: 10002
      tags: {kuma.io/service: b}
    - port: 10003
      health: {ready: false}
      serviceProbe: {tcp: {}}
      tags: {kuma.io/service: c}
"""


def test_inbound_targets() -> None:
    r = load_proxy_resource(DP, {})
    a, b, c = inbound_targets(r)
    assert (a.port, a.service_address, a.service_port) == (10001, "127.0.0.2", 8001)
    assert a.probe == ProbeSpec(interval=0.2, timeout=0.3, healthy_threshold=2, unhealthy_threshold=1)
    assert (b.service_address, b.service_port, b.probe, b.ready) == ("127.0.0.1", 10002, None, True)
    assert (c.probe, c.ready) == (None, False)  # health.ready: false pins it unready, never probed
    _, b2, c2 = inbound_targets(r, probe_all=True)
    assert b2.probe == ProbeSpec() and c2.probe is None


async def test_tcp_check(backend: HttpBackend) -> None:
    assert await tcp_check("127.0.0.1", backend.port, 1.0)
    assert not await tcp_check("127.0.0.1", free_port(), 1.0)


async def test_reports_follow_a_real_backend_down_and_up(backend: HttpBackend) -> None:
    cp = FakeCp(free_port())
    cp.start()
    text = f"""\
type: Dataplane
mesh: default
name: web-1
networking:
  address: 127.0.0.1
  inbound:
    - port: 10001
      servicePort: {backend.port}
      serviceProbe: {{interval: 100ms, timeout: 500ms, tcp: {{}}}}
      tags: {{kuma.io/service: web}}
    - port: 10002
      health: {{ready: false}}
      tags: {{kuma.io/service: admin}}
"""
    targets = inbound_targets(load_proxy_resource(text, {}))
    reporter = HealthReporter(
        cp.url, mesh="default", name="web-1", token="tok", initial={10001: False, 10002: False}, retry_initial=0.05
    )
    tasks = [asyncio.create_task(reporter.run()), asyncio.create_task(run_probes(targets, reporter))]
    try:
        await until(lambda: cp.latest_inbounds() == {10001: True, 10002: False}, "ready report")
        first = cp.reports()[0]
        assert first == {
            "mesh": "default",
            "name": "web-1",
            "token": "tok",
            "inbounds": [{"port": 10001, "ready": True}, {"port": 10002, "ready": False}],
        }
        backend.stop()
        await until(lambda: cp.latest_inbounds().get(10001) is False, "unready report")
        # the CP is down for a while: the reporter retries and then delivers the newest state
        cp.health_status = 503
        backend.start()
        await until(lambda: reporter.state.get(10001) is True, "probe sees the backend")
        n = len(cp.reports())
        cp.health_status = 200
        await until(lambda: cp.latest_inbounds().get(10001) is True, "ready again")
        assert len(cp.reports()) == n + 1
        assert all(r["inbounds"][1] == {"port": 10002, "ready": False} for r in cp.reports())
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks)
        cp.stop()
