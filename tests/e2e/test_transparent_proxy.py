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
