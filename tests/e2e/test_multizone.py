"""The multi-zone deployment of ``shared/spec/multizone-deployment.md``, every role its own process on
loopback: a global CP, two zone CPs, a zone ingress per zone, sidecars with mTLS; ``frontend`` in
zone-1 calls ``backend``, which runs once in zone-1 and twice in zone-2.

Each test names the spec bullet it checks. The deployment is built once for the module; tests that
break something put it back."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.mesh import DP, Load, call, http_json
from tests.e2e.multizone import MultiZone, allow_all, mtls_mesh
from tests.helpers import ATOLL, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]

OUT_BACKEND = free_port()
OUT_DB = free_port()


@pytest.fixture(scope="module")
def mz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiZone]:
    m = MultiZone(tmp_path_factory.mktemp("multizone"))
    try:
        m.start_global()
        for mesh in ("default", "other"):
            m.glob.put(mtls_mesh(mesh))
            m.glob.put(allow_all(mesh))
        m.add_zone("zone-1")
        m.add_zone("zone-2")
        m.ingress("zone-1")
        m.ingress("zone-2")
        m.service("zone-1", "backend-1", "backend")
        m.service("zone-2", "backend-2a", "backend")
        m.service("zone-2", "backend-2b", "backend")
        m.service("zone-2", "db-2", "db", protocol="tcp")
        m.service("zone-2", "other-backend", "backend", mesh="other")
        m.service("zone-1", "frontend", "frontend", outbound={"backend": OUT_BACKEND, "db": OUT_DB})
        yield m
    except BaseException:
        print(m.dump_logs())
        raise
    finally:
        m.stop()


def shares(port: int, n: int) -> Counter[str]:
    return Counter(call(port) for _ in range(n))


def zone_of(body: str) -> str:
    return {"backend=backend-1": "zone-1", "backend=backend-2a": "zone-2", "backend=backend-2b": "zone-2"}.get(
        body, body
    )


def wait_balanced(mz: MultiZone) -> None:
    wait_until(
        lambda: {zone_of(b) for b in shares(OUT_BACKEND, 30)} == {"zone-1", "zone-2"},
        timeout=30,
        what="frontend reaches backend in both zones",
    )


# --- global control plane -------------------------------------------------------------------------


def test_global_keeps_an_inventory_of_every_proxy_in_every_zone(mz: MultiZone) -> None:
    """Global: keep an inventory of all data plane proxies running in all zones."""

    def inventory() -> dict[str, tuple[str, bool]]:
        items = mz.glob.get("/meshes/default/dataplanes+insights")["items"]
        return {
            i["labels"]["kuma.io/display-name"]: (i["labels"]["kuma.io/zone"], i["dataplaneInsight"]["online"])
            for i in items
        }

    want = {
        "backend-1": ("zone-1", True),
        "frontend": ("zone-1", True),
        "backend-2a": ("zone-2", True),
        "backend-2b": ("zone-2", True),
        "db-2": ("zone-2", True),
    }
    wait_until(lambda: inventory() == want, timeout=20, what="every proxy of both zones online at global")
    for zone, n in (("zone-1", 2), ("zone-2", 4)):
        z = mz.zone_insight(zone)
        assert z["online"] and z["connectedSince"] and z["cpVersion"], z
        assert z["dataplanes"] == n, z
        assert z["lastSync"]["globalToZone"] and z["lastSync"]["zoneToGlobal"], z
    table = subprocess.run(
        [*ATOLL, "--cp", mz.glob.url, "inspect", "zones"], capture_output=True, text=True, timeout=30
    )
    assert table.returncode == 0, table.stderr
    rows = {ln.split()[0]: ln for ln in table.stdout.splitlines()[1:] if ln.strip()}
    assert "Online" in rows["zone-1"] and "Online" in rows["zone-2"], table.stdout
    listed = subprocess.run([*ATOLL, "--cp", mz.glob.url, "get", "zones"], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0 and "zone-1" in listed.stdout and "zone-2" in listed.stdout


def test_global_rejects_dataplanes_and_proxies(mz: MultiZone, tmp_path: Path) -> None:
    """Global: reject connections from data plane proxies (and Dataplane writes)."""
    dp = {
        "type": "Dataplane",
        "mesh": "default",
        "name": "sneaky",
        "networking": {"address": "127.0.0.1", "inbound": [{"port": 9000, "tags": {"kuma.io/service": "x"}}]},
    }
    status, body = http_json("PUT", mz.glob.url + "/meshes/default/dataplanes/sneaky", dp)
    assert status == 405 and "zone" in body["details"], body
    f = tmp_path / "dp.json"
    import json

    f.write_text(json.dumps(dp))
    run = subprocess.run(
        [*DP, "run", "--cp", mz.glob.url, "--dataplane-file", str(f)], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 2
    assert "proxies connect to a zone control plane" in run.stdout + run.stderr


def test_policies_written_at_global_reach_both_zones_and_zones_refuse_them(mz: MultiZone) -> None:
    """Global: accept policies and send them down; zone: reject policy changes that do not come from global."""
    policy = {
        "type": "MeshTimeout",
        "mesh": "default",
        "name": "from-global",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "40s"}}],
        },
    }
    mz.glob.put(policy)
    for zone in ("zone-1", "zone-2"):
        got = mz.wait_synced(zone, "/meshes/default/meshtimeouts/from-global", "the policy")
        assert got["labels"]["kuma.io/origin"] == "global"
        status, body = http_json(
            "PUT", mz.zones[zone].url + "/meshes/default/meshtimeouts/from-zone", {**policy, "name": "from-zone"}
        )
        assert status == 405 and "global" in body["details"], body
    status, _ = http_json("DELETE", mz.glob.url + "/meshes/default/meshtimeouts/from-global")
    assert status == 200
    for zone in ("zone-1", "zone-2"):
        wait_until(
            lambda zone=zone: mz.zones[zone].get("/meshes/default/meshtimeouts")["total"] == 1,
            timeout=20,
            what=f"policy removed in {zone}",
        )  # only the mesh's default MeshTimeout remains


def test_access_log_written_at_global_logs_in_both_zones(mz: MultiZone, tmp_path: Path) -> None:
    """A MeshAccessLog of global: zone-1's frontend logs its outbound calls, and backend's sidecars in
    zone-2 log the same requests arriving through the ingress."""
    out_log, in_log = tmp_path / "out.log", tmp_path / "in.log"
    fmt = "%KUMA_TRAFFIC_DIRECTION% %KUMA_SOURCE_SERVICE% %KUMA_DESTINATION_SERVICE% %REQ(:PATH)% %UPSTREAM_HOST%"

    def backends(path: Path) -> list[dict[str, object]]:
        return [{"type": "File", "file": {"path": str(path), "format": {"type": "Plain", "plain": fmt}}}]

    policy = {
        "type": "MeshAccessLog",
        "mesh": "default",
        "name": "logs-from-global",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": {"backends": backends(out_log)}}],
            "from": [{"targetRef": {"kind": "Mesh"}, "default": {"backends": backends(in_log)}}],
        },
    }
    mz.glob.put(policy)
    try:
        zone2 = {f"127.0.0.1:{mz.apps[name].port}" for name in ("backend-2a", "backend-2b")}

        def logged_in_both() -> bool:
            call(OUT_BACKEND)
            outbound = out_log.read_text().splitlines() if out_log.exists() else []
            inbound = in_log.read_text().splitlines() if in_log.exists() else []
            return any(ln.startswith("OUTBOUND frontend backend / ") for ln in outbound) and any(
                ln.startswith("INBOUND unknown backend / ") and ln.split()[-1] in zone2 for ln in inbound
            )

        wait_until(logged_in_both, timeout=30, interval=0.2, what="access logs in zone-1 and zone-2")
    finally:
        status, _ = http_json("DELETE", mz.glob.url + "/meshes/default/meshaccesslogs/logs-from-global")
        assert status == 200


# --- cross-zone traffic ---------------------------------------------------------------------------


def test_zone_ingress_lists_local_services_and_reaches_other_zones(mz: MultiZone) -> None:
    """Zone CP: update the list of services in the zone ingress; send zone ingresses to global, and
    global sends them to the other zone (never back)."""
    zi = mz.wait_synced("zone-2", "/zoneingresses/ingress-zone-2", "ingress-zone-2")
    avail = {(a["mesh"], a["tags"]["kuma.io/service"]): a["instances"] for a in zi["availableServices"]}
    assert avail == {("default", "backend"): 2, ("default", "db"): 1, ("other", "backend"): 1}, avail
    copies = mz.zones["zone-1"].get("/zoneingresses")["items"]
    remote = [i for i in copies if i["labels"].get("kuma.io/zone") == "zone-2"]
    assert len(remote) == 1 and remote[0]["labels"]["kuma.io/origin"] == "global"
    own = [
        i for i in mz.zones["zone-2"].get("/zoneingresses")["items"] if i["labels"].get("kuma.io/origin") == "global"
    ]
    assert all(i["labels"].get("kuma.io/zone") != "zone-2" for i in own), "an ingress never flows back to its zone"


def test_cross_zone_traffic_is_weighted_by_instance_count(mz: MultiZone) -> None:
    """Zone ingress endpoints are weighted by the number of instances behind them (1 in zone-1, 2 in zone-2)."""
    wait_balanced(mz)
    counts = shares(OUT_BACKEND, 450)
    by_zone = Counter(zone_of(b) for b in counts.elements())
    print(f"answers: {dict(counts)}")
    assert set(by_zone) == {"zone-1", "zone-2"}, counts
    ratio = by_zone["zone-2"] / by_zone["zone-1"]
    assert 2 * 0.9 <= ratio <= 2 * 1.1, f"zone-2 : zone-1 = {ratio:.2f}, want 2 +-10%: {dict(counts)}"
    # The ingress passes TLS through, so it balances connections, not requests: concurrent callers (more
    # pooled connections from the frontend's sidecar) reach both instances behind it.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        concurrent = Counter(pool.map(lambda _: call(OUT_BACKEND), range(400)))
    assert concurrent["backend=backend-2a"] > 0 and concurrent["backend=backend-2b"] > 0, concurrent
    assert not any("other-backend" in b for b in counts), "meshes are isolated"


def test_cross_zone_tcp_through_the_ingress(mz: MultiZone) -> None:
    """TCP services are reachable across zones too (mTLS end to end, SNI routed at the ingress)."""
    wait_until(lambda: call(OUT_DB) == "backend=db-2", timeout=20, what="db in zone-2 over TCP")


# --- fail-over ------------------------------------------------------------------------------------


def test_failover_when_every_remote_instance_goes_away_and_back(mz: MultiZone) -> None:
    """(a) All instances of backend in zone-2 go away: traffic stays local, with no manual step."""
    wait_balanced(mz)
    with Load(OUT_BACKEND) as load:
        wait_until(lambda: load.total() > 20, timeout=10, what="load")
        t0 = time.monotonic()
        mz.stop_agent("backend-2a")
        mz.stop_agent("backend-2b")
        wait_until(lambda: set(shares(OUT_BACKEND, 20)) == {"backend=backend-1"}, timeout=15, what="local only")
        failover_s = time.monotonic() - t0
        errors_during = load.errors()
        settled = load.total()
        wait_until(lambda: load.total() > settled + 100, timeout=10, what="load after fail-over")
        assert load.errors() == errors_during, "no errors once traffic is local"
        mz.restart_agent("backend-2a")
        mz.restart_agent("backend-2b")
        wait_balanced(mz)
    print(f"fail-over (a): {failover_s:.2f}s, errors during the transition: {errors_during} of {settled}")


def test_traffic_keeps_flowing_while_global_is_down_and_zones_resync(mz: MultiZone) -> None:
    """(c) Global down: traffic within and across zones flows on the last config; zone-local changes still
    apply; the zones resync when global returns."""
    wait_balanced(mz)
    token = mz.token("default", "backend-1b")
    with Load(OUT_BACKEND) as load:
        mz.glob.stop()
        wait_until(lambda: load.total() > 100, timeout=10, what="load")
        assert {zone_of(b) for b in shares(OUT_BACKEND, 30)} == {"zone-1", "zone-2"}
        mz.service("zone-1", "backend-1b", "backend", token=token)  # a zone-local change while global is away
        wait_until(lambda: "backend=backend-1b" in shares(OUT_BACKEND, 40), timeout=15, what="new local instance")
        errors = load.errors()
        mz.glob.start()
    wait_until(lambda: mz.zone_online("zone-1") and mz.zone_online("zone-2"), timeout=30, what="zones back online")
    wait_until(
        lambda: any(
            i["labels"].get("kuma.io/display-name") == "backend-1b"
            for i in mz.glob.get("/meshes/default/dataplanes")["items"]
        ),
        timeout=20,
        what="the change made while global was away reached global",
    )
    mz.stop_agent("backend-1b")
    print(f"global down: {errors} errors of {load.total()} requests")
    assert errors == 0


def test_zone_cp_restart_keeps_proxies_serving(mz: MultiZone) -> None:
    """(d) A zone CP restarts: its proxies keep serving and reconverge."""
    wait_balanced(mz)
    with Load(OUT_BACKEND) as load:
        mz.zones["zone-1"].stop()
        before = load.total()
        wait_until(lambda: load.total() > before + 100, timeout=10, what="traffic with zone-1's CP down")
        mz.zones["zone-1"].start()
        wait_until(
            lambda: mz.zones["zone-1"].insight("default", "frontend").get("online"),
            timeout=30,
            what="frontend reconnected to zone-1's CP",
        )
        wait_until(lambda: mz.zone_online("zone-1"), timeout=30, what="zone-1 back at global")
    print(f"zone CP restart: {load.errors()} errors of {load.total()} requests")
    assert load.errors() == 0


def test_policy_deleted_at_global_while_a_zone_is_away_is_gone_when_it_returns(mz: MultiZone) -> None:
    policy = {
        "type": "MeshRetry",
        "mesh": "default",
        "name": "while-away",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": {"tcp": {"maxConnectAttempt": 3}}}],
        },
    }
    mz.glob.put(policy)
    mz.wait_synced("zone-2", "/meshes/default/meshretries/while-away", "the policy")
    mz.zones["zone-2"].stop()
    status, _ = http_json("DELETE", mz.glob.url + "/meshes/default/meshretries/while-away")
    assert status == 200
    mz.zones["zone-2"].start()
    wait_until(lambda: mz.zone_online("zone-2"), timeout=30, what="zone-2 back")
    wait_until(
        lambda: http_json("GET", mz.zones["zone-2"].url + "/meshes/default/meshretries/while-away")[0] == 404,
        timeout=20,
        what="the deleted policy gone from zone-2",
    )
