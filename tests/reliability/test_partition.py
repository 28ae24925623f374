"""A zone leader partitioned from global and from the database (iptables inside its network namespace).

zone-1 has two instances on one PostgreSQL: A lives on its own network host (a network namespace,
``tests/e2e/netns.py``) and reaches the database through a forwarder on the veth's host address, B
runs here. A is the leader and holds the zone's KDS stream. Then iptables in A's namespace drops
everything A sends to the database and to global — no RST, the connections just go silent. A must
stop leading on its own (its lease deadline passes), B must become leader (within 5 s) and only after
A stopped (log timestamps), and KDS must resume through B (global drops A's silent stream by
keepalive). Healed, A comes back as a follower.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.mesh import CpProcess, http_json
from tests.e2e.netns import ZoneHost, available
from tests.helpers import free_port, wait_until
from tests.reliability.conftest import FIGURES, new_database
from tests.store.conftest import PgServer

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

WHY_NOT = available()
HANDOVER_LIMIT = 5.0


class Forwarder:
    """TCP from ``host:port`` (a free port) to 127.0.0.1:``target``, one thread pair per connection."""

    def __init__(self, host: str, target: int) -> None:
        self.target = target
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()
        for c in self._conns:
            c.close()


@pytest.fixture
def zone_host() -> Iterator[ZoneHost]:
    host = ZoneHost("ha")
    try:
        yield host
    finally:
        host.close()


def _leads(cp: CpProcess) -> bool | None:
    """Whether ``cp`` says it leads (its own row is always current); None if it does not answer."""
    status, body = http_json("GET", cp.url + "/control-planes", timeout=2)
    if status != 200:
        return None
    return any(i["leader"] and str(i["address"]).endswith(f":{cp.api_port}") for i in body["items"])


def _log_time(cp: CpProcess, needle: str) -> datetime:
    """When ``cp`` logged the last line containing ``needle`` (its log's local timestamps)."""
    lines = [line for line in cp.log_path.read_text(errors="replace").splitlines() if needle in line]
    assert lines, f"{cp.name} never logged {needle!r}"
    return datetime.strptime(lines[-1][:23], "%Y-%m-%d %H:%M:%S,%f")


def _zone_cp_instance(glob: CpProcess) -> str | None:
    for i in glob.get("/zones+insights")["items"]:
        if i["name"] == "zone-1" and i["zoneInsight"].get("online"):
            return str(i["zoneInsight"].get("cpInstance"))
    return None


def _instance_id(cp: CpProcess) -> str:
    body = cp.get("/control-planes")
    return next(str(i["id"]) for i in body["items"] if str(i["address"]).endswith(f":{cp.api_port}"))


def _iptables(host: ZoneHost, action: str, port: int) -> None:
    subprocess.run(
        [
            *host.prefix,
            "iptables",
            action,
            "OUTPUT",
            "-d",
            host.outer_ip,
            "-p",
            "tcp",
            "--dport",
            str(port),
            "-j",
            "DROP",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.mark.skipif(WHY_NOT is not None, reason=f"zones as network hosts: {WHY_NOT}")
def test_a_partitioned_zone_leader_steps_down_and_the_other_takes_over(
    pg_server: PgServer, zone_host: ZoneHost, tmp_path: Path
) -> None:
    from atoll.pki import generate_self_signed

    cert, key = generate_self_signed(
        ["127.0.0.1", zone_host.outer_ip], valid_for=timedelta(hours=1), now=datetime.now(UTC)
    )
    (tmp_path / "kds.crt").write_text(cert)
    (tmp_path / "kds.key").write_text(key)
    dsn_name = "atoll_ha_partition"
    new_database(pg_server, dsn_name)
    db = Forwarder(zone_host.outer_ip, pg_server.port)
    kds = free_port()
    started: list[CpProcess] = []
    try:
        glob = CpProcess(
            tmp_path,
            name="global",
            env={
                "ATOLL_MODE": "global",
                "ATOLL_KDS_PORT": str(kds),
                "ATOLL_KDS_HOST": "0.0.0.0",
                "ATOLL_KDS_TLS_CERT": str(tmp_path / "kds.crt"),
                "ATOLL_KDS_TLS_KEY": str(tmp_path / "kds.key"),
                "ATOLL_AUTH": "token",
            },
        ).start()
        started.append(glob)
        token = tmp_path / "zone-1.token"
        token.write_text(glob.post("/tokens/zone", {"zone": "zone-1", "scope": ["cp"]})["token"])
        zone_env = {
            "ATOLL_MODE": "zone",
            "ATOLL_ZONE": "zone-1",
            "ATOLL_ZONE_TOKEN_FILE": str(token),
            "ATOLL_GLOBAL_CA_FILE": str(tmp_path / "kds.crt"),
            "ATOLL_AUTH": "token",
        }
        a = CpProcess(
            tmp_path,
            name="zone-1-a",
            store="postgres",
            prefix=zone_host.prefix,
            host=zone_host.inner_ip,
            env={
                **zone_env,
                "ATOLL_GLOBAL_ADDRESS": f"grpcs://{zone_host.outer_ip}:{kds}",
                "ATOLL_STORE_DSN": f"host={zone_host.outer_ip} port={db.port} user=postgres dbname={dsn_name}",
                "ATOLL_API_HOST": "0.0.0.0",
                "ATOLL_DIAGNOSTICS_HOST": "0.0.0.0",
            },
        ).start()
        started.append(a)
        wait_until(lambda: _leads(a), timeout=20, what="A leads")
        wait_until(lambda: _zone_cp_instance(glob) == _instance_id(a), timeout=30, what="zone-1 synced through A")
        b = CpProcess(
            tmp_path,
            name="zone-1-b",
            store="postgres",
            env={
                **zone_env,
                "ATOLL_GLOBAL_ADDRESS": f"grpcs://127.0.0.1:{kds}",
                "ATOLL_STORE_DSN": pg_server.dsn(dsn_name),
            },
        ).start()
        started.append(b)
        wait_until(lambda: b.get("/control-planes")["total"] == 2, timeout=20, what="B sees both instances")
        assert _leads(b) is False

        for port in (db.port, kds):
            _iptables(zone_host, "-A", port)
        cut = time.monotonic()
        FIGURES["faults"].append("zone-1 leader partitioned from global and the database (iptables)")
        wait_until(lambda: _leads(b), timeout=HANDOVER_LIMIT + 10, what="B leads", interval=0.1)
        handover = time.monotonic() - cut
        assert _leads(a) is False, "A still says it leads while B does"
        stepped_down = _log_time(a, "no longer leader")
        elected = _log_time(b, "became leader")
        assert stepped_down < elected, f"A stepped down at {stepped_down}, B was elected at {elected}"
        b_id = _instance_id(b)
        kds_began = time.monotonic()
        wait_until(lambda: _zone_cp_instance(glob) == b_id, timeout=60, what="zone-1 synced through B")
        kds_resumed = time.monotonic() - kds_began + handover
        FIGURES["transitions"].append(
            {
                "name": f"partition of zone-1's leader (KDS resumed via the other instance {kds_resumed:.1f}s after)",
                "requests": 0,
                "failed": 0,
                "requests_after": 0,
                "failed_after": 0,
                "handover_s": handover,
            }
        )

        for port in (db.port, kds):
            _iptables(zone_host, "-D", port)
        wait_until(lambda: a.get("/control-planes")["leader"] == b_id, timeout=30, what="A healed, follows B")
        assert _leads(a) is False and _leads(b) is True
        assert handover < HANDOVER_LIMIT, f"B led {handover:.2f}s after the cut"
    finally:
        for cp in reversed(started):
            cp.stop()
        db.close()
