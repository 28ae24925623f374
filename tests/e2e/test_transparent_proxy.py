"""The transparent proxy end to end, every workload in its own network namespace (issue 12).

A standalone CP on this host; frontend, backend b1 and backend b2 each in a namespace of their own
with `atoll dp install transparent-proxy` (the proxies run as root, exempt; the applications as
nobody). The frontend application knows only names: ``http://backend.mesh/`` reaches both backends
(through the frontend's outbound capture listener and each backend's inbound capture listener), the
VirtualOutbound name ``backend.<instance>.mesh`` reaches exactly that instance, and a name outside the
mesh (served by the namespaces' upstream resolver, a tiny DNS server of the test) still resolves and
is reached through the passthrough. Uninstall leaves each namespace's rules as they were.
"""

from __future__ import annotations

import copy
import http.server
import ipaddress
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.lan import Lan, TinyDns, Workload
from tests.e2e.mesh import Agent, CpProcess
from tests.e2e.netns import available
from tests.helpers import free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]

WHY_NOT = available() or (None if shutil.which("iptables-nft") else "needs iptables-nft (apt-get install iptables)")
APP_PORT = 18080
INBOUND_PORT = 8080

VIRTUAL_OUTBOUND = {
    "type": "VirtualOutbound",
    "mesh": "default",
    "name": "instances",
    "selectors": [{"match": {"kuma.io/service": "backend"}}],
    "conf": {
        "host": "{{.svc}}.{{.inst}}.mesh",
        "port": "80",
        "parameters": [{"name": "svc", "tagKey": "kuma.io/service"}, {"name": "inst", "tagKey": "kuma.io/instance"}],
    },
}


def dataplane(name: str, w: Workload, service: str, instance: str) -> dict:
    return {
        "type": "Dataplane",
        "mesh": "default",
        "name": name,
        "networking": {
            "address": w.ip,
            "inbound": [
                {
                    "port": INBOUND_PORT,
                    "servicePort": APP_PORT,
                    "tags": {"kuma.io/service": service, "kuma.io/protocol": "http", "kuma.io/instance": instance},
                }
            ],
            "transparentProxying": {"redirectPortInbound": 15006, "redirectPortOutbound": 15001},
        },
    }


class _Outside:
    """An HTTP server outside the mesh, on the LAN address of this host."""

    def __init__(self, address: str) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"outside"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: object) -> None:
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer((address, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def lan() -> Iterator[Lan]:
    net = Lan()
    try:
        yield net
    finally:
        net.close()


@pytest.mark.skipif(WHY_NOT is not None, reason=f"workloads in network namespaces: {WHY_NOT}")
def test_names_reach_services_and_instances_through_the_transparent_proxy(lan: Lan, tmp_path: Path) -> None:
    dns = TinyDns(lan.gateway, {"outside.test": lan.gateway})
    outside = _Outside(lan.gateway)
    started: list[CpProcess | Agent] = []
    try:
        cp = CpProcess(
            tmp_path,
            env={"ATOLL_API_HOST": "0.0.0.0", "ATOLL_DIAGNOSTICS_HOST": "0.0.0.0", "ATOLL_XDS_HOST": "0.0.0.0"},
        ).start()
        started.append(cp)
        on_lan = copy.copy(cp)  # the workloads reach the CP at its LAN address (the test at loopback)
        on_lan.host = lan.gateway
        cp.put({"type": "Mesh", "name": "default"})
        cp.put(VIRTUAL_OUTBOUND)

        front, b1, b2 = lan.workload("front"), lan.workload("b1"), lan.workload("b2")
        before = {w.ns: w.rules() for w in (front, b1, b2)}
        for w in (front, b1, b2):
            done = w.run(*_atoll(), "dp", "install", "transparent-proxy", "--uid", "0")
            assert done.returncode == 0, done.stderr
        for w, label in ((b1, "b1"), (b2, "b2")):
            w.app(APP_PORT, label, tmp_path / f"{label}-app.log")
        for name, w, service in (("b1", b1, "backend"), ("b2", b2, "backend"), ("front", front, "frontend")):
            agent = Agent(
                on_lan,
                tmp_path,
                dataplane(name, w, service, name),
                prefix=w.prefix,
                extra_args=["--ca-file", str(cp.data_dir / "xds-tls.crt")],
            )
            started.append(agent)
            agent.start()

        # backend.mesh: both instances, through both capture listeners
        seen: set[str] = set()

        def both() -> bool:
            seen.add(front.curl("http://backend.mesh/"))
            return {"backend=b1", "backend=b2"} <= seen

        wait_until(both, timeout=60, interval=0.2, what=f"backend.mesh reaches b1 and b2 (seen {seen})")
        assert {s for s in seen if not s.startswith("error")} == {"backend=b1", "backend=b2"}
        # the service's own port answers too
        assert front.curl(f"http://backend.mesh:{INBOUND_PORT}/") in ("backend=b1", "backend=b2")

        # a VirtualOutbound name per instance reaches exactly that instance
        for label in ("b1", "b2"):
            url = f"http://backend.{label}.mesh/"
            wait_until(lambda u=url, lbl=label: front.curl(u) == f"backend={lbl}", timeout=30, what=url)
            assert {front.curl(url) for _ in range(8)} == {f"backend={label}"}

        # DNS: A with the VIP and a low TTL
        rcode, answers = front.dns("backend.mesh", 1)
        assert rcode == 0 and len(answers) == 1 and answers[0][0] <= 30, answers
        assert ipaddress.ip_address(answers[0][1]) in ipaddress.ip_network("240.0.0.0/4")
        # AAAA: no address, answered by the proxy itself (Envoy's DNS filter says NXDOMAIN: see the docs)
        assert front.dns("backend.mesh", 28)[1] == []
        assert "backend.mesh" not in dns.asked
        # a name outside the mesh resolves through the upstream resolver and is passed through
        assert front.curl(f"http://outside.test:{outside.port}/") == "outside"
        assert "outside.test" in dns.asked
        assert "backend.mesh" not in dns.asked  # mesh names never leave the proxy

        for a in started[1:]:
            a.stop()
        for w in (front, b1, b2):
            done = w.run(*_atoll(), "dp", "uninstall", "transparent-proxy")
            assert done.returncode == 0, done.stderr
            assert w.rules() == before[w.ns]
    finally:
        for p in reversed(started):
            p.stop()
        outside.close()
        dns.close()


def _atoll() -> list[str]:
    return [sys.executable, "-m", "atoll.cli.main"]


def _zone_cp(tmp_path: Path, glob: CpProcess, kds: int, zone: str) -> CpProcess:
    token = tmp_path / f"{zone}.zone-token"
    token.write_text(glob.post("/tokens/zone", {"zone": zone, "scope": ["cp", "ingress"]})["token"])
    return CpProcess(
        tmp_path,
        name=zone,
        env={
            "ATOLL_MODE": "zone",
            "ATOLL_ZONE": zone,
            "ATOLL_GLOBAL_ADDRESS": f"grpcs://127.0.0.1:{kds}",
            "ATOLL_ZONE_TOKEN_FILE": str(token),
            "ATOLL_GLOBAL_CA_FILE": str(glob.data_dir / "kds-tls.crt"),
            "ATOLL_AUTH": "token",
            "ATOLL_API_HOST": "0.0.0.0",
            "ATOLL_DIAGNOSTICS_HOST": "0.0.0.0",
            "ATOLL_XDS_HOST": "0.0.0.0",
        },
    ).start()


def _admin(w: Workload, started: list[CpProcess | Agent]) -> str:
    """The clusters of the agent running in ``w`` (for a failure's message)."""
    for a in started:
        if isinstance(a, Agent) and a.prefix == w.prefix:
            clusters = w.run("curl", "-s", f"http://127.0.0.1:{a.admin_port}/clusters").stdout
            return "\n".join(line for line in clusters.splitlines() if "::health_flags::" in line)
    return ""


def _egress_bytes(w: Workload, started: list[CpProcess | Agent]) -> int:
    """Bytes the egress running in ``w`` sent to backend's clusters (whole service and subsets)."""
    for a in started:
        if isinstance(a, Agent) and a.prefix == w.prefix:
            stats = w.run("curl", "-s", f"http://127.0.0.1:{a.admin_port}/stats").stdout.splitlines()
            return sum(
                int(line.rsplit(" ", 1)[1])
                for line in stats
                if line.startswith("cluster.default_backend") and ".upstream_cx_tx_bytes_total:" in line
            )
    raise AssertionError(f"no agent runs in {w.ns}")


def _start(agent: Agent) -> None:
    """Start ``agent``, again until the zone lets it in (global's signing keys reach zones over KDS)."""

    def started() -> bool:
        agent.start(wait=False)
        try:
            wait_until(agent.is_ready, timeout=20, what=f"agent {agent.name} ready")
        except AssertionError:
            agent.stop()
            return False
        return True

    wait_until(started, timeout=60, interval=0.5, what=f"{agent.name} started")


@pytest.mark.skipif(WHY_NOT is not None, reason=f"workloads in network namespaces: {WHY_NOT}")
@pytest.mark.parametrize("egress", [False, True], ids=["direct", "zone-egress"])
def test_names_cross_zones_through_the_ingress(lan: Lan, tmp_path: Path, egress: bool) -> None:
    """zone-1: frontend and b1; zone-2: b2a, b2b and its ingress; mTLS. ``backend.mesh`` from the
    frontend goes 1:2 to zone-1 and zone-2 (the ingress endpoint weighs 2), and the VirtualOutbound
    name of each instance reaches exactly it, in zone-2 through the ingress (the subset's SNI). With
    ``routing.zoneEgress`` (and an egress in zone-1, its own namespace) the same holds, through it."""
    from tests.e2e.multizone import allow_all, mtls_mesh

    started: list[CpProcess | Agent] = []
    try:
        kds = free_port()
        glob = CpProcess(
            tmp_path, name="global", env={"ATOLL_MODE": "global", "ATOLL_KDS_PORT": str(kds), "ATOLL_AUTH": "token"}
        ).start()
        started.append(glob)
        mesh = mtls_mesh()
        if egress:
            mesh["routing"] = {"zoneEgress": True}
        glob.put(mesh)
        glob.put(allow_all())
        glob.put(VIRTUAL_OUTBOUND)
        zones = {}
        for zone in ("zone-1", "zone-2"):
            zones[zone] = _zone_cp(tmp_path, glob, kds, zone)
            started.append(zones[zone])

        def on_lan(cp: CpProcess) -> CpProcess:
            out = copy.copy(cp)
            out.host = lan.gateway
            return out

        def agent(zone: str, doc: dict, w: Workload, token: str, proxy_type: str = "dataplane") -> Agent:
            cp = zones[zone]
            a = Agent(
                on_lan(cp),
                tmp_path,
                doc,
                token=token,
                proxy_type=proxy_type,
                prefix=w.prefix,
                extra_args=["--ca-file", str(cp.data_dir / "xds-tls.crt")],
            )
            started.append(a)
            _start(a)
            return a

        ing = lan.workload("ing2")
        ingress_port = 10001
        agent(
            "zone-2",
            {
                "type": "ZoneIngress",
                "name": "ingress-zone-2",
                "networking": {
                    "address": ing.ip,
                    "port": ingress_port,
                    "advertisedAddress": ing.ip,
                    "advertisedPort": ingress_port,
                },
            },
            ing,
            glob.post("/tokens/zone", {"zone": "zone-2", "scope": ["ingress"]})["token"],
            proxy_type="ingress",
        )
        if egress:
            eg = lan.workload("eg1")
            agent(
                "zone-1",
                {"type": "ZoneEgress", "name": "egress-zone-1", "networking": {"address": eg.ip, "port": 10002}},
                eg,
                glob.post("/tokens/zone", {"zone": "zone-1", "scope": ["egress"]})["token"],
                proxy_type="egress",
            )
        workloads = {}
        for name, zone, service in (
            ("b1", "zone-1", "backend"),
            ("b2a", "zone-2", "backend"),
            ("b2b", "zone-2", "backend"),
            ("front", "zone-1", "frontend"),
        ):
            w = workloads[name] = lan.workload(name)
            done = w.run(*_atoll(), "dp", "install", "transparent-proxy", "--uid", "0")
            assert done.returncode == 0, done.stderr
            if service == "backend":
                w.app(APP_PORT, name, tmp_path / f"{name}-app.log")
            token = glob.post("/tokens/dataplane", {"mesh": "default", "name": name})["token"]
            agent(zone, dataplane(name, w, service, name), w, token)
        front = workloads["front"]

        # The ingress passes each mTLS connection through whole (SNI), so which zone-2 instance answers
        # is per connection: count by zone, as the other multi-zone tests do.
        seen: set[str] = set()

        def all_seen() -> bool:
            seen.update(front.curl_many("http://backend.mesh/", 30))
            return "backend=b1" in seen and bool({"backend=b2a", "backend=b2b"} & seen)

        try:
            wait_until(all_seen, timeout=90, interval=0.5, what="backend.mesh reaches zone-1 and zone-2")
        except AssertionError as e:
            diag = {w: _admin(workloads[w], started) for w in ("front",)} | {"ing2": _admin(ing, started)}
            raise AssertionError(f"{e}\nseen: {seen}\n{diag}") from None
        answers = front.curl_many("http://backend.mesh/", 450)
        local = answers.count("backend=b1")
        remote = answers.count("backend=b2a") + answers.count("backend=b2b")
        assert local + remote == len(answers), sorted(set(answers))
        ratio = remote / local
        assert 2 * 0.85 <= ratio <= 2 * 1.15, f"zone-2 : zone-1 = {ratio:.2f}, want 2: {local=} {remote=}"

        # a VirtualOutbound name per instance, in this zone and through the other zone's ingress
        for label in ("b1", "b2a", "b2b"):
            url = f"http://backend.{label}.mesh/"
            wait_until(lambda u=url, lbl=label: front.curl(u) == f"backend={lbl}", timeout=60, what=url)
            assert set(front.curl_many(url, 20)) == {f"backend={label}"}
        if egress:  # the cross-zone bytes went through the egress
            assert _egress_bytes(eg, started) > 0
    finally:
        for p in reversed(started):
            p.stop()
