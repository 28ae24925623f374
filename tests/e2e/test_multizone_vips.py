"""Names of services that run only in another zone get VIPs too, and they stay put: global restarting
(so both zones resync over KDS) and the zone CP restarting leave every VIP where it was. Real global
and zone CP processes on loopback; no proxies are needed for the names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.mesh import http_json
from tests.e2e.multizone import MultiZone, mtls_mesh
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def mz(tmp_path: Path) -> Iterator[MultiZone]:
    m = MultiZone(tmp_path)
    try:
        m.start_global()
        m.glob.put(mtls_mesh("default"))
        m.add_zone("zone-1")
        m.add_zone("zone-2")
        yield m
    except BaseException:
        print(m.dump_logs())
        raise
    finally:
        m.stop()


def _dp(name: str, service: str, port: int) -> dict[str, Any]:
    return {
        "type": "Dataplane",
        "mesh": "default",
        "name": name,
        "networking": {
            "address": "127.0.0.1",
            "inbound": [{"port": port, "tags": {"kuma.io/service": service}}],
            "transparentProxying": {"redirectPortInbound": 15006, "redirectPortOutbound": 15001},
        },
    }


def _vips(mz: MultiZone, zone: str, *hostnames: str) -> dict[str, str]:
    def listed() -> dict[str, str] | None:
        got = {i["hostname"]: i["vip"] for i in mz.zones[zone].get("/meshes/default/_vips")["items"]}
        return got if set(hostnames) <= got.keys() else None

    return wait_until(listed, timeout=60, what=f"{', '.join(hostnames)} with VIPs in {zone}")


def test_remote_services_get_vips_that_survive_resyncs_and_restarts(mz: MultiZone) -> None:
    zone1, zone2 = mz.zones["zone-1"], mz.zones["zone-2"]
    status, body = http_json(
        "PUT",
        zone2.url + "/zoneingresses/ingress-zone-2",
        {
            "type": "ZoneIngress",
            "name": "ingress-zone-2",
            "zone": "zone-2",
            "networking": {
                "address": "127.0.0.1",
                "port": 10001,
                "advertisedAddress": "127.0.0.1",
                "advertisedPort": 10001,
            },
        },
    )
    assert status == 201, body
    zone2.put(_dp("db-2", "db", 5432))
    zone1.put(_dp("backend-1", "backend", 8080))
    before = _vips(mz, "zone-1", "backend.mesh", "db.mesh")  # db runs only in zone-2
    remote = next(i for i in zone1.get("/meshes/default/_vips")["items"] if i["hostname"] == "db.mesh")
    assert (remote["service"], remote["ports"], remote["origin"]) == ("db", [80], "service")

    def at_global() -> dict[str, dict[str, str]] | None:
        zones = mz.glob.get("/meshes/default/_vips")["zones"]
        got = {z["zone"]: {i["hostname"]: i["vip"] for i in z["items"]} for z in zones}
        return got if got.get("zone-1", {}).keys() >= before.keys() else None

    synced = wait_until(at_global, timeout=30, what="zone-1's VIPs at global")
    assert {h: synced["zone-1"][h] for h in before} == before  # global shows what the zone allocated

    mz.glob.stop()  # both zones lose global, then resync from scratch
    mz.glob.start()
    wait_until(lambda: mz.zone_online("zone-1") and mz.zone_online("zone-2"), timeout=60, what="zones back online")
    zone2.put(_dp("cache-2", "cache", 6379))  # a change that crosses after the resync
    after_resync = _vips(mz, "zone-1", "backend.mesh", "db.mesh", "cache.mesh")
    assert {h: after_resync[h] for h in before} == before

    zone1.stop()
    zone1.start()
    after_restart = _vips(mz, "zone-1", "backend.mesh", "db.mesh", "cache.mesh")
    assert after_restart == after_resync
