"""An HA multi-zone deployment of real processes on one real PostgreSQL, for the reliability suite.

``HaDeployment`` starts two global CP instances on one database (sharing one KDS TLS pair, so a zone
verifies either), three instances of zone ``zone-1`` on another database (each dialling both globals:
``--global-address`` lists them), and ``zone-2`` as one instance on SQLite with a zone ingress.
Sidecars are ``atoll dp run`` agents with real Envoy: a zone-1 agent lists all three zone-1
instances (``--cp`` repeated). Instances are killed with SIGKILL (``kill``) and found again by asking
any live instance's ``GET /control-planes``. Every process is stopped at teardown.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.e2e.mesh import Agent, CpProcess, http_json
from tests.e2e.multizone import allow_all, mtls_mesh
from tests.helpers import HttpBackend, free_port, wait_until


def rss_peak_kib(pid: int) -> int:
    """The peak resident set size of a live process (``VmHWM``), in KiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class HaDeployment:
    def __init__(self, workdir: Path, global_dsn: str, zone_dsn: str) -> None:
        self.workdir = workdir
        self.global_dsn = global_dsn
        self.zone_dsn = zone_dsn
        self.kds_ports = [free_port(), free_port()]
        self.globals: list[CpProcess] = []
        self.zone1: list[CpProcess] = []
        self.zone2: CpProcess | None = None
        self.agents: list[Agent] = []
        self.apps: list[HttpBackend] = []
        self.rss_peak = 0
        self.outbound_port = free_port()
        """The frontend's outbound port for ``backend`` (zone-1 to zone-2 traffic)."""

    # --- control planes ---------------------------------------------------------------------------

    def start_globals(self) -> None:
        for n, port in enumerate(self.kds_ports):
            env = {
                "ATOLL_MODE": "global",
                "ATOLL_KDS_PORT": str(port),
                "ATOLL_AUTH": "token",
                "ATOLL_STORE_DSN": self.global_dsn,
            }
            if self.globals:  # every global instance serves KDS with the same pair
                first = self.globals[0].data_dir
                env |= {
                    "ATOLL_KDS_TLS_CERT": str(first / "kds-tls.crt"),
                    "ATOLL_KDS_TLS_KEY": str(first / "kds-tls.key"),
                }
            self.globals.append(CpProcess(self.workdir, name=f"global-{n + 1}", store="postgres", env=env).start())

    @property
    def global_addresses(self) -> str:
        return ",".join(f"grpcs://127.0.0.1:{p}" for p in self.kds_ports)

    def zone_env(self, zone: str) -> dict[str, str]:
        token = self.workdir / f"{zone}.zone-token"
        if not token.exists():
            token.write_text(
                self.any_global().post("/tokens/zone", {"zone": zone, "scope": ["cp", "ingress"]})["token"]
            )
        return {
            "ATOLL_MODE": "zone",
            "ATOLL_ZONE": zone,
            "ATOLL_GLOBAL_ADDRESS": self.global_addresses,
            "ATOLL_ZONE_TOKEN_FILE": str(token),
            "ATOLL_GLOBAL_CA_FILE": str(self.globals[0].data_dir / "kds-tls.crt"),
            "ATOLL_AUTH": "token",
        }

    def start_zone1(self, instances: int = 3) -> None:
        env = {**self.zone_env("zone-1"), "ATOLL_STORE_DSN": self.zone_dsn}
        for n in range(instances):
            self.zone1.append(CpProcess(self.workdir, name=f"zone-1-{n + 1}", store="postgres", env=env).start())
        wait_until(lambda: self.zone_online("zone-1"), timeout=30, what="zone-1 online at global")

    def start_zone2(self) -> None:
        self.zone2 = CpProcess(self.workdir, name="zone-2", env=self.zone_env("zone-2")).start()
        wait_until(lambda: self.zone_online("zone-2"), timeout=30, what="zone-2 online at global")

    def live(self, group: list[CpProcess]) -> list[CpProcess]:
        return [cp for cp in group if cp.proc is not None and cp.proc.poll() is None]

    def any_global(self) -> CpProcess:
        return self.live(self.globals)[0]

    def control_planes(self, group: list[CpProcess]) -> dict[str, Any]:
        """``GET /control-planes`` of the first live instance of ``group`` that answers."""
        for cp in self.live(group):
            status, body = http_json("GET", cp.url + "/control-planes", timeout=2)
            if status == 200:
                return dict(body)
        return {}

    def leader(self, group: list[CpProcess]) -> CpProcess | None:
        """The live instance every live instance of ``group`` names as leader, if they agree."""
        names = set()
        for cp in self.live(group):
            status, body = http_json("GET", cp.url + "/control-planes", timeout=2)
            names.add(body.get("leader") if status == 200 else None)
        if len(names) != 1 or None in names:
            return None
        leader_id = names.pop()
        for item in self.control_planes(group).get("items", []):
            if item["id"] == leader_id:
                port = int(str(item["address"]).rsplit(":", 1)[1])
                return next((cp for cp in self.live(group) if cp.api_port == port), None)
        return None

    def leader_elected(self, group: list[CpProcess]) -> bool:
        """Some live instance of ``group`` leads (its own listing, always current about itself, says so)."""
        for cp in self.live(group):
            status, body = http_json("GET", cp.url + "/control-planes", timeout=2)
            if status == 200 and any(i["leader"] and i["address"].endswith(f":{cp.api_port}") for i in body["items"]):
                return True
        return False

    def kill(self, cp: CpProcess) -> None:
        """SIGKILL the instance (its whole process group); remember its peak RSS first."""
        assert cp.proc is not None
        self.rss_peak = max(self.rss_peak, rss_peak_kib(cp.proc.pid))
        os.killpg(cp.proc.pid, signal.SIGKILL)
        cp.proc.wait(10)
        cp.proc = None

    def zone_online(self, zone: str) -> bool:
        """Online at every live global instance."""
        for g in self.live(self.globals):
            status, body = http_json("GET", g.url + "/zones+insights")
            if status != 200 or not any(i["name"] == zone and i["zoneInsight"]["online"] for i in body["items"]):
                return False
        return True

    # --- the mesh and its proxies -------------------------------------------------------------------

    def put_global(self, doc: dict[str, Any]) -> None:
        self.any_global().put(doc)

    def setup_mesh(self) -> None:
        self.put_global(mtls_mesh())
        self.put_global(allow_all())

    def ingress(self) -> Agent:
        assert self.zone2 is not None
        port = free_port()
        doc = {
            "type": "ZoneIngress",
            "name": "ingress-zone-2",
            "networking": {
                "address": "127.0.0.1",
                "port": port,
                "advertisedAddress": "127.0.0.1",
                "advertisedPort": port,
            },
        }
        token = self.any_global().post("/tokens/zone", {"zone": "zone-2", "scope": ["ingress"]})["token"]
        self._wait_synced(self.zone2, "/globalsecrets/zone-token-signing-key-0001")
        return self._start(Agent(self.zone2, self.workdir, doc, token=token, proxy_type="ingress"))

    def service(self, zone: str, name: str, service: str, outbound: dict[str, int] | None = None) -> Agent:
        app = HttpBackend(name)
        self.apps.append(app)
        doc = {
            "type": "Dataplane",
            "mesh": "default",
            "name": name,
            "networking": {
                "address": "127.0.0.1",
                "inbound": [
                    {
                        "port": free_port(),
                        "servicePort": app.port,
                        "tags": {"kuma.io/service": service, "kuma.io/protocol": "http"},
                    }
                ],
                "outbound": [{"port": p, "tags": {"kuma.io/service": s}} for s, p in (outbound or {}).items()],
            },
        }
        token = str(self.any_global().post("/tokens/dataplane", {"mesh": "default", "name": name})["token"])
        if zone == "zone-1":
            first, *others = self.live(self.zone1)
            extra = [arg for cp in others for arg in ("--cp", cp.url)]
        else:
            assert self.zone2 is not None
            first, extra = self.zone2, []
        self._wait_synced(
            first,
            "/meshes/default/secrets",
            lambda body: any(
                i["name"].startswith("dataplane-token-signing-key-default") for i in body.get("items", [])
            ),
        )
        agent = Agent(first, self.workdir, doc, token=token, extra_args=extra)
        return self._start(agent)

    def _start(self, agent: Agent) -> Agent:
        self.agents.append(agent)
        return agent.start()

    def _wait_synced(self, cp: CpProcess, path: str, ok: Any = lambda body: True) -> None:
        def synced() -> bool:
            status, body = http_json("GET", cp.url + path)
            return status == 200 and bool(ok(body))

        wait_until(synced, timeout=30, what=f"{path} synced to {cp.name}")

    # --- teardown --------------------------------------------------------------------------------

    def measure_rss(self) -> None:
        for cp in [*self.globals, *self.zone1, *([self.zone2] if self.zone2 else [])]:
            if cp.proc is not None:
                self.rss_peak = max(self.rss_peak, rss_peak_kib(cp.proc.pid))

    def stop(self) -> None:
        self.measure_rss()
        for agent in self.agents:
            agent.stop()
        for cp in [*self.zone1, *([self.zone2] if self.zone2 else []), *self.globals]:
            cp.stop()
        for app in self.apps:
            app.stop()

    def dump_logs(self) -> str:
        parts = []
        for p in sorted(self.workdir.glob("*.log")):
            parts.append(f"--- {p.name}\n" + p.read_text(errors="replace")[-2500:])
        return "\n".join(parts)


def timed(cond: Any, timeout: float, what: str) -> float:
    """Seconds until ``cond()`` is truthy (``wait_until``'s deadline applies)."""
    started = time.monotonic()
    wait_until(cond, timeout=timeout, what=what, interval=0.1)
    return time.monotonic() - started
