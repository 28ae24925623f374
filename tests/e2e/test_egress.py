"""The zone egress for cross-zone traffic (spec: "In the presence of a zone egress, the traffic is
routed through the local zone egress before being sent to the remote zone ingress").

Deployment (built once): global, zone-1 (ingress, egress ``egress-zone-1``), zone-2 (ingress); mesh
``default`` with mTLS; ``backend`` runs once in zone-1 and twice in zone-2; ``frontend`` (zone-1)
calls it. The tests switch ``routing.zoneEgress`` on and off on the live mesh under load.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.mesh import Agent, Load, call
from tests.e2e.multizone import MultiZone, allow_all, mtls_mesh
from tests.helpers import ATOLL, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]

OUT_BACKEND = free_port()
ZONE_OF = {"backend=backend-1": "zone-1", "backend=backend-2a": "zone-2", "backend=backend-2b": "zone-2"}


@pytest.fixture(scope="module")
def mz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiZone]:
    m = MultiZone(tmp_path_factory.mktemp("egress"))
    try:
        m.start_global()
        m.glob.put(mtls_mesh("default"))
        m.glob.put(allow_all("default"))
        m.add_zone("zone-1")
        m.add_zone("zone-2")
        m.ingress("zone-1")
        m.ingress("zone-2")
        m.egress("zone-1")
        m.service("zone-1", "backend-1", "backend")
        m.service("zone-2", "backend-2a", "backend")
        m.service("zone-2", "backend-2b", "backend")
        m.service("zone-1", "frontend", "frontend", outbound={"backend": OUT_BACKEND})
        yield m
    except BaseException:
        print(m.dump_logs())
        raise
    finally:
        m.stop()


def zones(n: int) -> Counter[str]:
    return Counter(ZONE_OF.get(b, b) for b in (call(OUT_BACKEND) for _ in range(n)))


def egress_cx(mz: MultiZone) -> int:
    """Bytes zone-1's egress sent on to zone-2's ingress for ``backend`` (sidecars pool connections,
    so bytes, not connections, show traffic going through)."""
    doc = json.loads(mz.agents["egress-zone-1"].admin("/stats?format=json"))
    name = "cluster.default_backend.upstream_cx_tx_bytes_total"
    return sum(int(s.get("value", 0)) for s in doc["stats"] if s.get("name") == name)


def set_zone_egress(mz: MultiZone, on: bool) -> None:
    mesh: dict[str, Any] = mtls_mesh("default")
    mesh["routing"] = {"zoneEgress": on}
    mz.glob.put(mesh)


def test_switching_zone_egress_on_and_off_under_load(mz: MultiZone) -> None:
    wait_until(lambda: set(zones(30)) == {"zone-1", "zone-2"}, timeout=30, what="both zones reached directly")
    assert mz.egress_ports["zone-1"]
    direct_cx = egress_cx(mz)
    with Load(OUT_BACKEND, lambda answer: ZONE_OF.get(answer, answer)) as load:
        start = load.mark()
        set_zone_egress(mz, True)
        # Converged: new cross-zone connections open at the egress.
        wait_until(lambda: egress_cx(mz) > direct_cx, timeout=30, what="cross-zone traffic through the egress")
        converged = load.mark()
        wait_until(lambda: sum(load.since(converged).values()) >= 300, timeout=60, what="300 requests via egress")
        via_egress = load.since(converged)
        during_switch = load.since(start)
        set_zone_egress(mz, False)
        # Back to direct: the egress stops seeing new connections.
        wait_until(lambda: _quiet(mz, load), timeout=30, what="egress no longer used")
        back = load.mark()
        wait_until(lambda: sum(load.since(back).values()) >= 150, timeout=60, what="150 requests direct")
        direct_again = load.since(back)
        everything = load.since(start)
    assert set(via_egress) == {"zone-1", "zone-2"}, via_egress
    # Weighted as in direct routing: zone-2 has 2 of the 3 instances.
    share = via_egress["zone-2"] / sum(via_egress.values())
    assert 0.5 < share < 0.8, via_egress
    assert set(direct_again) == {"zone-1", "zone-2"}, direct_again
    # No request lost once converged, nor while switching either way.
    assert set(during_switch) <= {"zone-1", "zone-2"}, during_switch
    assert set(everything) <= {"zone-1", "zone-2"}, everything


def _quiet(mz: MultiZone, load: Load) -> bool:
    before = egress_cx(mz)
    mark = load.mark()
    wait_until(lambda: load.mark() >= mark + 30, timeout=20, what="30 more requests")
    return egress_cx(mz) == before


def test_inspect_zoneegresses_shows_the_egress_and_what_it_routes(mz: MultiZone) -> None:
    table = subprocess.run(
        [*ATOLL, "--cp", mz.zones["zone-1"].url, "inspect", "zoneegresses"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert table.returncode == 0, table.stderr
    assert "egress-zone-1" in table.stdout and "Online" in table.stdout, table.stdout
    one = subprocess.run(
        [*ATOLL, "--cp", mz.zones["zone-1"].url, "inspect", "zoneegress", "egress-zone-1", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert one.returncode == 0, one.stderr
    doc = json.loads(one.stdout)
    insight = doc["zoneEgressInsight"]
    assert insight["online"] is True
    assert {"mesh": "default", "service": "backend", "sni": "backend{mesh=default}", "zones": {"zone-2": 2}} in insight[
        "passThrough"
    ]


def test_global_keeps_the_egress_in_its_inventory(mz: MultiZone) -> None:
    def synced() -> list[dict[str, Any]]:
        items = mz.glob.get("/zoneegresses")["items"]
        return [i for i in items if i["labels"].get("kuma.io/display-name", i["name"]) == "egress-zone-1"]

    (item,) = wait_until(synced, timeout=20, what="egress-zone-1 at global")
    assert item["zone"] == "zone-1"
    assert item["labels"]["kuma.io/zone"] == "zone-1"


def test_egress_needs_a_zone_token_with_scope_egress(mz: MultiZone, tmp_path: Path) -> None:
    token = mz.glob.post("/tokens/zone", {"zone": "zone-1", "scope": ["ingress"]})["token"]
    doc = {"type": "ZoneEgress", "name": "impostor", "networking": {"address": "127.0.0.1", "port": free_port()}}
    agent = Agent(mz.zones["zone-1"], tmp_path, doc, token=token, proxy_type="egress")
    agent.start(wait=False)
    try:
        assert agent.proc is not None
        rc = agent.proc.wait(timeout=30)
        assert rc != 0
        assert "egress" in agent.log(), agent.log()
    finally:
        agent.stop()
