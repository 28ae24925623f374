"""Kuma's own data plane agent, ``kuma-dp`` 2.14.3 (the real binary), against Atoll zone CPs.

One deployment for the module: a global CP and two zone CPs (``tests.e2e.multizone``), mesh ``default``
with mTLS and allow-all. Zone-1's ingress is a ``kuma-dp --proxy-type ingress``; zone-2's is Atoll's
agent. ``frontend`` (zone-1) and ``backend`` (zone-2) are ``kuma-dp`` sidecars, so the frontend reaches
the backend across zones over mTLS through Atoll's ingress. ``client`` (zone-2, ``kuma-dp``) reaches
``api`` (zone-1, Atoll's agent) through the ``kuma-dp`` ingress, and, with ``routing.zoneEgress`` on
(the last test), through zone-2's egress, a ``kuma-dp --proxy-type egress``. Every ``kuma-dp`` points
``--cp-address`` at its zone CP's REST port, where ``POST /bootstrap`` takes Kuma's request.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.proxies.removal import MANAGED_LABEL
from tests.compat.kuma_dp_process import KumaDp
from tests.e2e.mesh import call
from tests.e2e.multizone import MultiZone, allow_all, mtls_mesh
from tests.helpers import HttpBackend, free_port, http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]

OUT_BACKEND = free_port()
OUT_API = free_port()


@pytest.fixture(scope="module")
def mz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiZone]:
    m = MultiZone(tmp_path_factory.mktemp("kuma-dp"))
    try:
        m.start_global()
        m.glob.put(mtls_mesh("default"))
        m.glob.put(allow_all("default"))
        m.add_zone("zone-1")
        m.add_zone("zone-2")
        m.ingress("zone-1", runner=KumaDp)
        m.ingress("zone-2")
        m.service("zone-2", "backend", "backend", runner=KumaDp)
        m.service("zone-1", "frontend", "frontend", outbound={"backend": OUT_BACKEND}, runner=KumaDp)
        m.service("zone-1", "api", "api")
        m.service("zone-2", "client", "client", outbound={"api": OUT_API}, runner=KumaDp)
        m.egress("zone-2", runner=KumaDp)
        yield m
    except BaseException:
        print(m.dump_logs())
        raise
    finally:
        m.stop()


def kuma_dps(mz: MultiZone) -> list[KumaDp]:
    return [a for a in mz.agents.values() if isinstance(a, KumaDp)]


def test_kuma_dp_sidecars_in_two_zones_carry_mtls_traffic_through_an_atoll_ingress(mz: MultiZone) -> None:
    wait_until(lambda: call(OUT_BACKEND) == "backend=backend", timeout=40, what="frontend -> backend across zones")
    for _ in range(20):
        assert call(OUT_BACKEND) == "backend=backend"
    # mTLS: the backend's inbound takes no plaintext, so the answers above came over the mesh's TLS.
    backend_inbound = mz.zones["zone-2"].get("/meshes/default/dataplanes/backend")["networking"]["inbound"][0]
    with pytest.raises(OSError):
        http_get(backend_inbound["port"], timeout=3)
    # Both sidecars are registered and connected at their zone CPs.
    for zone, name in (("zone-1", "frontend"), ("zone-2", "backend")):
        insight = mz.zones[zone].insight("default", name)
        assert insight.get("online"), insight


def test_a_kuma_dp_zone_ingress_carries_traffic_into_its_zone(mz: MultiZone) -> None:
    wait_until(lambda: call(OUT_API) == "backend=api", timeout=40, what="client (zone-2) -> api (zone-1)")
    for _ in range(20):
        assert call(OUT_API) == "backend=api"
    zi = mz.wait_synced("zone-1", "/zoneingresses/ingress-zone-1", "ingress-zone-1")
    services = {a["tags"]["kuma.io/service"] for a in zi["availableServices"]}
    assert {"api", "frontend"} <= services, zi


def test_kuma_dp_and_atoll_stay_quiet_while_serving(mz: MultiZone) -> None:
    """Nothing kuma-dp or its Envoy asks for goes unanswered in a loop: over a window of traffic,
    neither kuma-dp's log nor the zone CPs' logs grow by more than a few lines, and none is an error."""
    wait_until(lambda: call(OUT_BACKEND) == "backend=backend", timeout=40, what="frontend -> backend")
    dps = kuma_dps(mz)
    assert len(dps) == 5
    before = {dp.name: len(dp.log_lines()) for dp in dps}
    cp_before = {z: len(cp.log_path.read_text(errors="replace").splitlines()) for z, cp in mz.zones.items()}
    window_end = time.monotonic() + 6
    calls = 0
    while time.monotonic() < window_end:  # the window is filled with traffic, not slept through
        assert call(OUT_BACKEND) == "backend=backend"
        assert call(OUT_API) == "backend=api"
        calls += 2
    assert calls > 10
    for dp in dps:
        new = dp.log_lines()[before[dp.name] :]
        assert len(new) <= 2, f"kuma-dp {dp.name} logged {len(new)} lines in 6 s:\n" + "\n".join(new)
        loud = [
            line
            for line in dp.log_lines()
            if "\tERROR\t" in line or "retrying" in line or "][error]" in line or "][critical]" in line
        ]
        assert not loud, f"kuma-dp {dp.name}:\n" + "\n".join(loud)
    for zone, cp in mz.zones.items():
        new = cp.log_path.read_text(errors="replace").splitlines()[cp_before[zone] :]
        assert len(new) <= 2, f"{zone} CP logged {len(new)} lines in 6 s:\n" + "\n".join(new)


def test_kuma_dp_with_a_bad_request_is_refused_once_and_exits(mz: MultiZone, tmp_path: Path) -> None:
    """A refused bootstrap is a 4xx naming Kuma's field: kuma-dp prints it and stops, no retry loop."""
    doc = {
        "type": "Dataplane",
        "mesh": "no-such-mesh",
        "name": "lost",
        "networking": {"address": "127.0.0.1", "inbound": [{"port": free_port(), "tags": {"kuma.io/service": "x"}}]},
    }
    dp = KumaDp(mz.zones["zone-1"], tmp_path, doc, token=mz.token("default", "lost"))
    try:
        dp.start(wait=False)
        assert dp.proc is not None
        rc = dp.proc.wait(60)
        assert rc != 0
        log = dp.log()
        assert "Invalid request" in log and 'mesh \\"no-such-mesh\\" does not exist' in log, log
        assert log.count("trying to fetch bootstrap configuration") == 1, log
    finally:
        dp.stop()


def egress_tx_bytes(egress: KumaDp) -> int:
    """Bytes the egress sent on towards ``api`` (sidecars pool connections: bytes show traffic)."""
    doc = json.loads(egress.admin("/stats?format=json"))
    name = "cluster.default_api.upstream_cx_tx_bytes_total"
    return sum(int(s.get("value", 0)) for s in doc["stats"] if s.get("name") == name)


def test_a_kuma_dp_zone_egress_carries_cross_zone_traffic(mz: MultiZone) -> None:
    egress = mz.agents["egress-zone-2"]
    assert isinstance(egress, KumaDp)
    wait_until(lambda: call(OUT_API) == "backend=api", timeout=40, what="client -> api directly")
    before = egress_tx_bytes(egress)
    mesh = mtls_mesh("default")
    mesh["routing"] = {"zoneEgress": True}
    mz.glob.put(mesh)
    try:

        def through_egress() -> bool:
            return call(OUT_API) == "backend=api" and egress_tx_bytes(egress) > before

        wait_until(through_egress, timeout=40, what="client -> api through the kuma-dp egress")
        for _ in range(10):
            assert call(OUT_API) == "backend=api"
    finally:
        mz.glob.put(mtls_mesh("default"))


def test_kuma_dp_pointed_at_global_is_refused_once_and_exits(mz: MultiZone, tmp_path: Path) -> None:
    """Global serves no proxies: kuma-dp is told so once and stops (Kuma retries here; Atoll's 4xx ends it)."""
    doc = {
        "type": "Dataplane",
        "mesh": "default",
        "name": "at-global",
        "networking": {"address": "127.0.0.1", "inbound": [{"port": free_port(), "tags": {"kuma.io/service": "x"}}]},
    }
    dp = KumaDp(mz.glob, tmp_path, doc, token=mz.token("default", "at-global"))
    try:
        dp.start(wait=False)
        assert dp.proc is not None
        assert dp.proc.wait(60) != 0
        log = dp.log()
        assert "this control plane serves no proxies" in log, log
        assert log.count("trying to fetch bootstrap configuration") == 1, log
    finally:
        dp.stop()


def test_kuma_dp_starts_a_dataplane_applied_beforehand_by_mesh_and_name(mz: MultiZone, tmp_path: Path) -> None:
    """``kuma-dp run --mesh M --name N`` (no document): the stored Dataplane is served, and stays the
    user's: the proxy does not register it (no managed label), so it is not removed when the proxy goes."""
    app = HttpBackend("pre")
    doc = {
        "type": "Dataplane",
        "mesh": "default",
        "name": "pre",
        "networking": {
            "address": "127.0.0.1",
            "inbound": [{"port": free_port(), "servicePort": app.port, "tags": {"kuma.io/service": "pre"}}],
        },
    }
    zone = mz.zones["zone-2"]
    zone.put(doc)
    dp = KumaDp(zone, tmp_path, doc, token=mz.token("default", "pre"), by_name=True)
    try:
        dp.start()
        wait_until(lambda: zone.insight("default", "pre").get("online"), timeout=20, what="pre connected")
        assert MANAGED_LABEL not in zone.get("/meshes/default/dataplanes/pre").get("labels", {})
        inbound = zone.get("/meshes/default/dataplanes/pre")["networking"]["inbound"][0]["port"]
        socket.create_connection(("127.0.0.1", inbound), timeout=3).close()  # Envoy listens there
        with pytest.raises(OSError):  # mTLS mesh: the inbound Envoy serves takes no plaintext
            http_get(inbound, timeout=3)
    finally:
        dp.stop()
        app.stop()
