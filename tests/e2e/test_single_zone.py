"""One zone, real Envoy sidecars configured by a real control plane process, real HTTP through them."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from typing import Any

import pytest

from tests.e2e.conftest import AgentFactory, BackendFactory
from tests.e2e.mesh import Counter, CpProcess, http_json
from tests.helpers import ATOLL, HttpBackend, free_port, http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]


def backend_dp(name: str, app_port: int, *, probe: bool = False, protocol: str = "http") -> dict[str, Any]:
    inbound: dict[str, Any] = {
        "port": free_port(),
        "servicePort": app_port,
        "tags": {"kuma.io/service": "backend", "kuma.io/protocol": protocol},
    }
    if probe:
        inbound["serviceProbe"] = {"interval": "100ms", "timeout": "100ms", "tcp": {}}
    return {
        "type": "Dataplane",
        "mesh": "default",
        "name": name,
        "networking": {"address": "127.0.0.1", "inbound": [inbound]},
    }


def web_dp(outbound_port: int, web_app_port: int, *, protocol: str = "http") -> dict[str, Any]:
    return {
        "type": "Dataplane",
        "mesh": "default",
        "name": "web",
        "networking": {
            "address": "127.0.0.1",
            "inbound": [
                {
                    "port": free_port(),
                    "servicePort": web_app_port,
                    "tags": {"kuma.io/service": "web", "kuma.io/protocol": protocol},
                }
            ],
            "outbound": [{"port": outbound_port, "tags": {"kuma.io/service": "backend"}}],
        },
    }


def labels_seen(port: int, n: int = 30) -> dict[str, int]:
    seen: dict[str, int] = {}
    for _ in range(n):
        status, body = http_get(port)
        key = body if status == 200 else f"status={status}"
        seen[key] = seen.get(key, 0) + 1
    return seen


class Load:
    """Requests in a loop on a background thread, counting answers by body and failures."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = http_get(self.port, timeout=2)
                self.counter.add(body if status == 200 else None)
            except OSError:
                self.counter.add(None)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def snapshot(self) -> tuple[dict[str, int], int]:
        with self.counter.lock:
            return dict(self.counter.ok), self.counter.failed


@pytest.mark.parametrize("xds", ["sotw", "delta"])
def test_web_reaches_backend_scales_and_drains(
    cp: CpProcess, agents: AgentFactory, backends: BackendFactory, xds: str
) -> None:
    b1, b2, web_app = backends("b1"), backends("b2"), backends("web")
    out = free_port()
    agents(cp, backend_dp("backend-1", b1.port), xds=xds)
    agents(cp, web_dp(out, web_app.port), xds=xds)
    wait_until(lambda: http_get(out)[1] == "backend=b1", timeout=10, what="web -> backend-1 through two sidecars")

    # Scale out: a second instance takes part of the traffic.
    second = agents(cp, backend_dp("backend-2", b2.port), xds=xds)
    wait_until(lambda: set(labels_seen(out, 20)) == {"backend=b1", "backend=b2"}, timeout=10, what="both instances")

    # Scale in under load: stopping backend-2's agent drains it; after convergence nothing fails.
    with Load(out) as load:
        wait_until(lambda: sum(load.snapshot()[0].values()) > 20, timeout=10, what="load running")
        assert second.stop() == 0
        wait_until(lambda: cp.get("/meshes/default/dataplanes").get("total") == 2, timeout=10, what="backend-2 removed")
        _, failed_during = load.snapshot()
        before = load.snapshot()
        wait_until(lambda: sum(load.snapshot()[0].values()) > sum(before[0].values()) + 50, timeout=10, what="load")
        after = load.snapshot()
    assert after[1] == failed_during, f"requests failed after convergence: {after[1] - failed_during}"
    assert after[0].get("backend=b2", 0) == before[0].get("backend=b2", 0), "traffic still reached backend-2"
    print(f"[{xds}] failed requests while draining backend-2: {failed_during}")
    assert failed_during == 0


def test_failing_probe_removes_endpoint_and_it_comes_back(
    cp: CpProcess, agents: AgentFactory, backends: BackendFactory
) -> None:
    b1, b2, web_app = backends("b1"), backends("b2"), backends("web")
    out = free_port()
    agents(cp, backend_dp("backend-1", b1.port))
    agents(cp, backend_dp("backend-2", b2.port, probe=True))
    agents(cp, web_dp(out, web_app.port))
    wait_until(lambda: set(labels_seen(out, 20)) == {"backend=b1", "backend=b2"}, timeout=15, what="both instances")

    b2_port = b2.port
    b2.stop()  # the probe of backend-2's agent now fails
    wait_until(
        lambda: (
            cp.get("/meshes/default/dataplanes/backend-2")["networking"]["inbound"][0].get("health") == {"ready": False}
        ),
        timeout=5,
        what="backend-2 reported unready",
    )
    wait_until(lambda: set(labels_seen(out, 20)) == {"backend=b1"}, timeout=2, what="endpoint left web's EDS")

    revived = HttpBackend("b2-again", port=b2_port)
    try:
        wait_until(
            lambda: (
                cp.get("/meshes/default/dataplanes/backend-2")["networking"]["inbound"][0].get("health")
                == {"ready": True}
            ),
            timeout=5,
            what="backend-2 reported ready again",
        )
        wait_until(
            lambda: "backend=b2-again" in labels_seen(out, 20), timeout=5, what="endpoint back after probe passes"
        )
    finally:
        revived.stop()


def test_rejected_config_shows_as_nack_in_insights(
    cp: CpProcess, agents: AgentFactory, backends: BackendFactory
) -> None:
    web_app = backends("web")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        # The outbound port is held by another socket: Envoy cannot bind the listener and NACKs it.
        port = taken.getsockname()[1]
        agents(cp, web_dp(port, web_app.port), wait=False)

        def nacked() -> dict[str, Any] | None:
            i = cp.insight("default", "web")
            return i if i.get("nackCount", 0) > 0 else None

        insight = wait_until(nacked, timeout=20, what="a NACK recorded for web")
        assert "bind" in (insight["lastNackError"] or "").lower() or "address" in (insight["lastNackError"] or "")
        assert insight["online"] is True
        assert insight["xds"]["lds"]["nacks"] >= 1
    finally:
        taken.close()


def test_cp_restart_keeps_traffic_and_proxies_reconnect(
    cp: CpProcess, agents: AgentFactory, backends: BackendFactory
) -> None:
    b1, web_app = backends("b1"), backends("web")
    out = free_port()
    agents(cp, backend_dp("backend-1", b1.port))
    agents(cp, web_dp(out, web_app.port))
    wait_until(lambda: http_get(out)[1] == "backend=b1", timeout=10, what="traffic")

    cp.stop()
    assert labels_seen(out, 20) == {"backend=b1": 20}, "traffic must keep flowing while the CP is down"
    cp.start()
    wait_until(lambda: cp.insight("default", "web").get("online") is True, timeout=20, what="web reconnected")
    wait_until(lambda: cp.insight("default", "backend-1").get("online") is True, timeout=20, what="backend reconnected")
    assert labels_seen(out, 20) == {"backend=b1": 20}
    insight = cp.insight("default", "web")
    print(insight)
    assert insight["envoyVersion"].startswith("1.40"), insight


def test_bootstrap_rejects_bad_dataplanes(cp: CpProcess) -> None:
    def boot(dataplane: dict[str, Any]) -> tuple[int, Any]:
        return http_json("POST", cp.url + "/bootstrap", {"proxyType": "dataplane", "dataplane": dataplane})

    no_tag = backend_dp("x", 8080)
    no_tag["networking"]["inbound"][0]["tags"] = {"version": "v1"}
    status, body = boot(no_tag)
    assert status == 400
    assert any(p["field"].startswith("dataplane.networking.inbound[0]") for p in body["invalid_parameters"]), body

    clash = backend_dp("x", 8080)
    clash["networking"]["inbound"].append(dict(clash["networking"]["inbound"][0]))
    status, body = boot(clash)
    assert status == 400 and "already used" in str(body), body

    other_mesh = backend_dp("x", 8080)
    other_mesh["mesh"] = "nope"
    status, body = boot(other_mesh)
    assert status == 400
    assert body["invalid_parameters"] == [{"field": "dataplane.mesh", "reason": 'mesh "nope" does not exist'}]


def atoll(cp: CpProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ATOLL, "--cp", cp.url, *args], capture_output=True, text=True, timeout=30)


def test_inspect_shows_proxies_their_nacks_and_envoy_config(
    cp: CpProcess, agents: AgentFactory, backends: BackendFactory
) -> None:
    b1, web_app = backends("b1"), backends("web")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        agents(cp, backend_dp("backend-1", b1.port))
        bad_port = taken.getsockname()[1]
        agents(cp, web_dp(bad_port, web_app.port), wait=False)
        wait_until(lambda: cp.insight("default", "web").get("nackCount", 0) > 0, timeout=20, what="NACK")

        table = atoll(cp, "inspect", "dataplanes", "-m", "default")
        assert table.returncode == 0, table.stderr
        lines = {ln.split()[0]: ln for ln in table.stdout.splitlines() if ln.strip()}
        assert "Online" in lines["backend-1"] and "Online" in lines["web"]
        assert " 0 " in lines["backend-1"]
        assert "bind" in lines["web"].lower() or "address" in lines["web"].lower(), lines["web"]

        served = atoll(cp, "inspect", "dataplane", "backend-1", "--xds", "-o", "json")
        assert served.returncode == 0, served.stderr
        names = [listener["name"] for listener in json.loads(served.stdout)["listeners"]]
        assert any(n.startswith("inbound:") for n in names), names

        dump = atoll(cp, "inspect", "dataplane", "backend-1", "--config-dump", "-o", "json")
        assert dump.returncode == 0, dump.stderr
        kinds = [c["@type"] for c in json.loads(dump.stdout)["configs"]]
        assert any("ListenersConfigDump" in k for k in kinds), kinds

        missing = atoll(cp, "inspect", "dataplane", "nope", "--config-dump")
        assert missing.returncode != 0 and "nope" in (missing.stderr + missing.stdout)
    finally:
        taken.close()
