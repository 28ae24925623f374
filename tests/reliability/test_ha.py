"""HA control planes under faults, with real processes: two global instances and three zone-1 instances
on one real PostgreSQL, zone-2 on SQLite, cross-zone traffic through real Envoy (zone-1's frontend
calls zone-2's backend through zone-2's ingress) the whole time.

The tests run in order on one deployment (module scope) and each injects one kind of fault:
kill -9 the zone-1 leader, kill -9 the zone-1 instance serving the frontend's ADS, kill -9 the global
leader while writes go to global, restart the database. Each checks a new leader within 5 s (from
the instances' ``GET /control-planes``), that KDS resumed (a resource created at global reaches
zone-1, zone-1 is online at the global instances), that no acknowledged write is lost, and that no
request fails once the deployment has reconverged; the requests failed during each transition are
reported (``conftest.FIGURES``, printed at the end of the run).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.mesh import Load, call, http_json
from tests.helpers import wait_until
from tests.reliability.conftest import FIGURES, new_database
from tests.reliability.deployment import HaDeployment, timed
from tests.store.conftest import PgServer

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.envoy]

HANDOVER_LIMIT = 5.0
SETTLE = 3.0
"""Seconds of traffic after reconvergence in which no request may fail."""


@pytest.fixture(scope="module")
def ha(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaDeployment]:
    workdir: Path = tmp_path_factory.mktemp("ha")
    d = HaDeployment(workdir, new_database(pg_server, "atoll_ha_global"), new_database(pg_server, "atoll_ha_zone1"))
    try:
        d.start_globals()
        d.setup_mesh()
        d.start_zone2()
        d.start_zone1()
        d.ingress()
        d.service("zone-2", "backend-1", "backend")
        d.service("zone-1", "frontend-1", "frontend", outbound={"backend": d.outbound_port})
        yield d
    except BaseException:
        print(d.dump_logs())
        raise
    finally:
        d.stop()
        FIGURES["rss_peak_kib"] = max(FIGURES["rss_peak_kib"], d.rss_peak)


OK = "backend=backend-1"
"""The answer of zone-2's backend (``HttpBackend``) through the frontend's outbound."""


def _serving(d: HaDeployment) -> bool:
    return call(d.outbound_port) == OK


def _transition(name: str, load: Load, start: int, converged: int, end: int, handover: float | None) -> dict[str, Any]:
    during = load.answers[start:converged]
    after = load.answers[converged:end]
    record = {
        "name": name,
        "requests": len(during),
        "failed": sum(1 for a in during if a != OK),
        "requests_after": len(after),
        "failed_after": sum(1 for a in after if a != OK),
        "handover_s": handover,
    }
    FIGURES["transitions"].append(record)
    return record


def _settle(load: Load) -> int:
    """Let traffic run ``SETTLE`` seconds; the mark at the end (polled, with a deadline)."""
    begin = time.monotonic()
    wait_until(lambda: time.monotonic() - begin >= SETTLE, timeout=SETTLE + 5, interval=0.2)
    return load.mark()


def _kds_resumed(d: HaDeployment, marker: str) -> None:
    """A resource created at global now reaches a live zone-1 instance, and zone-1 is online at global."""
    d.put_global({"type": "Mesh", "name": marker})
    zone = d.live(d.zone1)[0]
    wait_until(
        lambda: http_json("GET", zone.url + f"/meshes/{marker}")[0] == 200, timeout=30, what=f"{marker} in zone-1"
    )
    wait_until(lambda: d.zone_online("zone-1"), timeout=30, what="zone-1 online at every global instance")


def _holder_of(d: HaDeployment) -> Any:
    """The live zone-1 instance that serves the (only) proxy of zone-1, the frontend."""
    for cp in d.live(d.zone1):
        status, body = http_json("GET", cp.url + "/control-planes", timeout=2)
        if status != 200:
            continue
        for item in body["items"]:
            if item["alive"] and item["proxies"]:
                port = int(str(item["address"]).rsplit(":", 1)[1])
                return next((c for c in d.live(d.zone1) if c.api_port == port), None)
    return None


def test_one_leader_per_role_and_every_instance_listed(ha: HaDeployment) -> None:
    wait_until(lambda: ha.leader(ha.zone1) is not None, timeout=20, what="zone-1 instances agree on a leader")
    wait_until(lambda: ha.leader(ha.globals) is not None, timeout=20, what="global instances agree on a leader")
    listing = ha.control_planes(ha.zone1)
    assert listing["role"] == "zone/zone-1" and listing["total"] == 3
    assert sum(1 for i in listing["items"] if i["leader"]) == 1
    assert all(i["alive"] and i["version"] and i["uptimeSeconds"] >= 0 for i in listing["items"])
    wait_until(
        lambda: sum(i["proxies"] for i in ha.control_planes(ha.zone1)["items"]) == 1,
        timeout=20,
        what="the frontend's proxy counted at exactly one zone-1 instance",
    )
    globals_listing = ha.control_planes(ha.globals)
    assert globals_listing["role"] == "global" and globals_listing["total"] == 2
    wait_until(lambda: _serving(ha), timeout=60, what="frontend reaches backend in zone-2")
    # every global instance shows zone-1's proxy online, whichever holds the zone's KDS stream
    for g in ha.live(ha.globals):
        wait_until(
            lambda g=g: any(
                i["dataplaneInsight"].get("online")
                for i in http_json("GET", g.url + "/meshes/default/dataplanes+insights")[1]["items"]
                if i["name"].startswith("frontend-1")
            ),
            timeout=30,
            what=f"frontend-1 online at {g.name}",
        )


def test_kill_the_zone_leader_under_traffic(ha: HaDeployment) -> None:
    wait_until(lambda: _serving(ha), timeout=60, what="traffic flows before the fault")
    leader = ha.leader(ha.zone1)
    assert leader is not None
    with Load(ha.outbound_port) as load:
        wait_until(lambda: load.total() >= 20, timeout=30, what="steady traffic")
        start = load.mark()
        ha.kill(leader)
        FIGURES["faults"].append("kill -9 zone-1 leader")
        handover = timed(lambda: ha.leader_elected(ha.zone1), HANDOVER_LIMIT + 5, "a new zone-1 leader")
        wait_until(lambda: ha.leader(ha.zone1) is not None, timeout=10, what="zone-1 instances agree on it")
        _kds_resumed(ha, "after-zone-leader-kill")
        wait_until(lambda: _serving(ha), timeout=30, what="traffic flows again")
        converged = load.mark()
        end = _settle(load)
        record = _transition("kill -9 zone-1 leader", load, start, converged, end, handover)
    assert handover < HANDOVER_LIMIT, f"new zone-1 leader after {handover:.2f}s"
    assert record["failed_after"] == 0, record


def test_kill_the_zone_instance_serving_the_frontend(ha: HaDeployment) -> None:
    holder = wait_until(lambda: _holder_of(ha), timeout=30, what="the frontend's instance")
    assert len(ha.live(ha.zone1)) == 2
    with Load(ha.outbound_port) as load:
        wait_until(lambda: load.total() >= 20, timeout=30, what="steady traffic")
        start = load.mark()
        was_leader = ha.leader(ha.zone1) is holder
        ha.kill(holder)
        FIGURES["faults"].append("kill -9 zone-1 instance serving the frontend's ADS")
        handover = timed(lambda: ha.leader_elected(ha.zone1), HANDOVER_LIMIT + 5, "a zone-1 leader")
        wait_until(
            lambda: any(i["proxies"] == 1 and i["alive"] for i in ha.control_planes(ha.zone1)["items"]),
            timeout=30,
            what="the frontend's Envoy reconnected its ADS stream to the surviving instance",
        )
        # a config change still reaches the frontend through the surviving instance
        ha.put_global(
            {
                "type": "MeshTimeout",
                "mesh": "default",
                "name": "after-ads-failover",
                "spec": {
                    "targetRef": {"kind": "Mesh"},
                    "to": [{"targetRef": {"kind": "Mesh"}, "default": {"connectionTimeout": "7s"}}],
                },
            }
        )
        wait_until(lambda: _serving(ha), timeout=30, what="traffic flows again")
        converged = load.mark()
        end = _settle(load)
        record = _transition(
            "kill -9 zone-1 instance serving ADS", load, start, converged, end, handover if was_leader else None
        )
    assert handover < HANDOVER_LIMIT
    assert record["failed_after"] == 0, record


class Writer:
    """PUTs MeshTimeouts to global in a loop, alternating between the global instances; records the
    names of the acknowledged ones (200/201)."""

    def __init__(self, ha: HaDeployment) -> None:
        self.urls = [g.url for g in ha.globals]
        self.acked: list[str] = []
        self.attempts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            name = f"w-{n}"
            url = self.urls[n % len(self.urls)] + f"/meshes/default/meshtimeouts/{name}"
            doc = {
                "type": "MeshTimeout",
                "mesh": "default",
                "name": name,
                "spec": {
                    "targetRef": {"kind": "Mesh"},
                    "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": f"{n + 60}s"}}],
                },
            }
            self.attempts += 1
            try:
                status, _ = http_json("PUT", url, doc, timeout=3)
            except OSError:
                status = 0
            if status in (200, 201):
                self.acked.append(name)
            n += 1
            self._stop.wait(0.05)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_kill_the_global_leader_under_traffic_and_writes(ha: HaDeployment) -> None:
    leader = ha.leader(ha.globals)
    assert leader is not None
    with Load(ha.outbound_port) as load, Writer(ha) as writer:
        wait_until(lambda: load.total() >= 20 and len(writer.acked) >= 10, timeout=30, what="traffic and writes")
        start = load.mark()
        ha.kill(leader)
        FIGURES["faults"].append("kill -9 global leader")
        handover = timed(lambda: ha.leader_elected(ha.globals), HANDOVER_LIMIT + 5, "a new global leader")
        wait_until(lambda: ha.leader(ha.globals) is not None, timeout=10, what="global instances agree on it")
        _kds_resumed(ha, "after-global-leader-kill")
        wait_until(lambda: len(writer.acked) >= 30, timeout=30, what="writes acknowledged after the kill")
        converged = load.mark()
        end = _settle(load)
        record = _transition("kill -9 global leader", load, start, converged, end, handover)
    survivor = ha.live(ha.globals)[0]
    zone = ha.live(ha.zone1)[0]
    names = {i["name"] for i in survivor.get("/meshes/default/meshtimeouts?size=1000")["items"]}
    lost = [n for n in writer.acked if n not in names]

    def zone_has_all() -> bool:
        have = {i["name"] for i in http_json("GET", zone.url + "/meshes/default/meshtimeouts?size=1000")[1]["items"]}
        return all(n in have for n in writer.acked)

    wait_until(zone_has_all, timeout=30, what="every acknowledged write synced to zone-1")
    FIGURES["writes_acked"] += len(writer.acked)
    FIGURES["writes_lost"] += len(lost)
    assert lost == []
    assert handover < HANDOVER_LIMIT
    assert record["failed_after"] == 0, record


def test_database_restart_under_load(ha: HaDeployment, pg_server: PgServer) -> None:
    with Load(ha.outbound_port) as load:
        wait_until(lambda: load.total() >= 20, timeout=30, what="steady traffic")
        start = load.mark()
        pg_server.restart()
        FIGURES["faults"].append("PostgreSQL restarted")
        handover = timed(
            lambda: ha.leader(ha.zone1) is not None and ha.leader(ha.globals) is not None,
            30,
            "leaders again after the database restart",
        )
        _kds_resumed(ha, "after-database-restart")
        converged = load.mark()
        end = _settle(load)
        record = _transition("PostgreSQL restart", load, start, converged, end, handover)
    assert record["failed_after"] == 0, record
    assert record["failed"] == 0, "the data plane does not depend on the database: no request may fail"
