"""Policies written at the global control plane change what the sidecars of both zones do.

A global CP, two zone CPs, a zone ingress per zone, mTLS; ``backend`` runs once in each zone and
``frontend`` runs once in each zone, each with an outbound to ``backend``. Every check is made on
traffic through the frontends' real Envoys, in both zones, never only on config dumps:

- a MeshTimeout written at global makes a slow backend answer 504 within its requestTimeout, from
  each zone (before it, the same request is still waiting well past that);
- a MeshLoadBalancingStrategy with ``localityAwareness`` written at global keeps each zone's
  traffic in its own zone while a local instance exists, and fails over to the other zone when
  the local one goes away.

The deployment is built once for the module; each test removes its policy at the end.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.mesh import call, http_json
from tests.e2e.multizone import MultiZone, allow_all, mtls_mesh
from tests.helpers import free_port, http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]

ZONES = ("zone-1", "zone-2")
OUT = {zone: free_port() for zone in ZONES}
"""The outbound port to ``backend`` of the frontend in each zone."""
LOCAL = {zone: f"backend=backend-{zone}" for zone in ZONES}
"""What ``backend`` answers from each zone."""


@pytest.fixture(scope="module")
def mz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiZone]:
    m = MultiZone(tmp_path_factory.mktemp("policies"))
    try:
        m.start_global()
        m.glob.put(mtls_mesh())
        m.glob.put(allow_all())
        for zone in ZONES:
            m.add_zone(zone)
            m.ingress(zone)
        for zone in ZONES:
            m.service(zone, f"backend-{zone}", "backend")
            m.service(zone, f"frontend-{zone}", "frontend", outbound={"backend": OUT[zone]})
        yield m
    except BaseException:
        print(m.dump_logs())
        raise
    finally:
        m.stop()


def _answers(zone: str, n: int) -> Counter[str]:
    return Counter(call(OUT[zone]) for _ in range(n))


def _both_zones_reached(zone: str) -> bool:
    return set(_answers(zone, 30)) == set(LOCAL.values())


def _put_at_global(mz: MultiZone, doc: dict[str, Any], path: str) -> None:
    mz.glob.put(doc)
    for zone in ZONES:
        mz.wait_synced(zone, path, f"{doc['type']} {doc['name']}")


def _delete_at_global(mz: MultiZone, path: str) -> None:
    status, body = http_json("DELETE", mz.glob.url + path)
    assert status == 200, body
    for zone in ZONES:
        wait_until(
            lambda zone=zone: http_json("GET", mz.zones[zone].url + path)[0] == 404,
            timeout=30,
            what=f"{path} removed in {zone}",
        )


def _timed_slow(zone: str, timeout: float) -> tuple[int | str, float]:
    """GET /slow through the zone's frontend: (status, or the client error's name; seconds)."""
    start = time.monotonic()
    try:
        status, _ = http_get(OUT[zone], "/slow", timeout=timeout)
    except OSError as e:
        return type(e).__name__, time.monotonic() - start
    return status, time.monotonic() - start


REQUEST_TIMEOUT = 0.5
TIMEOUT_PATH = "/meshes/default/meshtimeouts/backend-fast"


def test_timeout_written_at_global_fires_in_both_zones(mz: MultiZone) -> None:
    for zone in ZONES:
        wait_until(lambda zone=zone: _both_zones_reached(zone), timeout=60, what=f"{zone} reaches both backends")
        # without the policy, a slow backend is still being waited for well past 0.5 s
        assert _timed_slow(zone, 2.0)[0] == "TimeoutError", zone
    policy = {
        "type": "MeshTimeout",
        "mesh": "default",
        "name": "backend-fast",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [
                {
                    "targetRef": {"kind": "MeshService", "name": "backend"},
                    "default": {"http": {"requestTimeout": f"{int(REQUEST_TIMEOUT * 1000)}ms"}},
                }
            ],
        },
    }
    _put_at_global(mz, policy, TIMEOUT_PATH)
    try:
        for zone in ZONES:
            wait_until(
                lambda zone=zone: _timed_slow(zone, 5.0)[0] == 504, timeout=60, what=f"the timeout in force in {zone}"
            )
            timed = [_timed_slow(zone, 5.0) for _ in range(10)]
            assert {status for status, _ in timed} == {504}, (zone, timed)
            assert all(REQUEST_TIMEOUT * 0.9 <= s < REQUEST_TIMEOUT + 2.5 for _, s in timed), (zone, timed)
            assert set(_answers(zone, 20)) <= set(LOCAL.values()), "quick requests are still answered"
    finally:
        _delete_at_global(mz, TIMEOUT_PATH)
    for zone in ZONES:
        wait_until(
            lambda zone=zone: _timed_slow(zone, 2.0)[0] == "TimeoutError",
            timeout=60,
            what=f"the timeout gone from {zone} with the policy",
        )
    for app in mz.apps.values():
        app.release_slow.set()  # the requests Envoy gave up on end now, not in 30 s


LOCALITY_PATH = "/meshes/default/meshloadbalancingstrategies/backend-local"


def test_locality_awareness_written_at_global_keeps_each_zone_local(mz: MultiZone) -> None:
    for zone in ZONES:
        wait_until(lambda zone=zone: _both_zones_reached(zone), timeout=60, what=f"{zone} reaches both backends")
    policy = {
        "type": "MeshLoadBalancingStrategy",
        "mesh": "default",
        "name": "backend-local",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [
                {
                    "targetRef": {"kind": "MeshService", "name": "backend"},
                    "default": {"localityAwareness": {"disabled": False}},
                }
            ],
        },
    }
    _put_at_global(mz, policy, LOCALITY_PATH)
    try:
        for zone in ZONES:
            wait_until(
                lambda zone=zone: set(_answers(zone, 30)) == {LOCAL[zone]},
                timeout=60,
                what=f"{zone}'s traffic kept local",
            )
            assert _answers(zone, 200) == Counter({LOCAL[zone]: 200}), zone
        # the other zone is a fail-over, not cut off: without the local instance traffic goes there
        mz.stop_agent("backend-zone-1")
        try:
            wait_until(
                lambda: set(_answers("zone-1", 20)) == {LOCAL["zone-2"]},
                timeout=60,
                what="zone-1 fails over to zone-2",
            )
        finally:
            mz.restart_agent("backend-zone-1")
        wait_until(lambda: set(_answers("zone-1", 30)) == {LOCAL["zone-1"]}, timeout=60, what="zone-1 local again")
    finally:
        _delete_at_global(mz, LOCALITY_PATH)
    for zone in ZONES:
        wait_until(lambda zone=zone: _both_zones_reached(zone), timeout=60, what=f"{zone} balanced again")
