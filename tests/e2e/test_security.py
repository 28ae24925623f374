"""Mesh security end to end: mTLS between real sidecars with identities from the mesh CA, permissions
as RBAC, certificate rotation and the PERMISSIVE -> STRICT migration under traffic, tokens."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import AgentFactory, BackendFactory
from tests.e2e.mesh import DP, Agent, CpProcess, http_json
from tests.helpers import free_port, http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]


@pytest.fixture
def secure_cp(tmp_path: Path) -> Iterator[CpProcess]:
    c = CpProcess(tmp_path, env={"ATOLL_AUTH": "token"}).start()
    try:
        yield c
    finally:
        c.stop()


def mesh(mode: str | None = "STRICT", expiration: str | None = None) -> dict[str, Any]:
    if mode is None:
        return {"type": "Mesh", "name": "default"}
    backend: dict[str, Any] = {"name": "ca-1", "type": "builtin", "mode": mode}
    if expiration:
        backend["dpCert"] = {"rotation": {"expiration": expiration}}
    return {"type": "Mesh", "name": "default", "mtls": {"enabledBackend": "ca-1", "backends": [backend]}}


def permission(name: str, source: dict[str, Any], action: str) -> dict[str, Any]:
    return {
        "type": "MeshTrafficPermission",
        "mesh": "default",
        "name": name,
        "spec": {"targetRef": {"kind": "Mesh"}, "from": [{"targetRef": source, "default": {"action": action}}]},
    }


def service_dp(
    name: str, service: str, app_port: int, protocol: str, outbound: dict[str, int] | None = None
) -> dict[str, Any]:
    return {
        "type": "Dataplane",
        "mesh": "default",
        "name": name,
        "networking": {
            "address": "127.0.0.1",
            "inbound": [
                {
                    "port": free_port(),
                    "servicePort": app_port,
                    "tags": {"kuma.io/service": service, "kuma.io/protocol": protocol},
                }
            ],
            "outbound": [{"port": p, "tags": {"kuma.io/service": s}} for s, p in (outbound or {}).items()],
        },
    }


def start(cp: CpProcess, agents: AgentFactory, doc: dict[str, Any]) -> Agent:
    return agents(cp, doc, token=cp.dataplane_token("default", doc["name"]))


def serials(agent: Agent) -> set[str]:
    certs = json.loads(agent.admin("/certs"))["certificates"]
    return {c["serial_number"] for entry in certs for c in entry.get("cert_chain", [])}


def safe_get(port: int) -> tuple[int, str]:
    try:
        return http_get(port, timeout=2)
    except OSError as e:
        return 0, type(e).__name__


class Load:
    def __init__(self, port: int) -> None:
        self.port = port
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            status, body = safe_get(self.port)
            if status == 200:
                self.ok += 1
            else:
                self.failed.append(f"{status} {body[:60]}")

    def __enter__(self) -> Load:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(5)


def test_mtls_permissions_and_plaintext_refused(
    secure_cp: CpProcess, agents: AgentFactory, backends: BackendFactory
) -> None:
    cp = secure_cp
    cp.put(mesh("STRICT"))
    cp.put(permission("allow-all", {"kind": "Mesh"}, "Allow"))
    b_http, b_tcp, web_app = backends("http"), backends("tcp"), backends("web")
    out_http, out_tcp = free_port(), free_port()
    backend = start(cp, agents, service_dp("backend-1", "backend", b_http.port, "http"))
    start(cp, agents, service_dp("db-1", "db", b_tcp.port, "tcp"))
    start(cp, agents, service_dp("web", "web", web_app.port, "http", {"backend": out_http, "db": out_tcp}))
    wait_until(lambda: safe_get(out_http) == (200, "backend=http"), timeout=15, what="HTTP over mTLS")
    wait_until(lambda: safe_get(out_tcp) == (200, "backend=tcp"), timeout=15, what="TCP over mTLS")
    assert serials(backend), "the sidecar holds an identity certificate delivered over SDS"

    # A plaintext client straight to the STRICT inbound is refused.
    inbound = cp.get("/meshes/default/dataplanes/backend-1")["networking"]["inbound"][0]["port"]
    status, _ = safe_get(inbound)
    assert status != 200

    # Deny web (more specific than the mesh-wide Allow): HTTP 403, TCP closed.
    cp.put(permission("deny-web", {"kind": "MeshService", "name": "web"}, "Deny"))
    wait_until(lambda: safe_get(out_http)[0] == 403, timeout=10, what="HTTP 403 after Deny")
    wait_until(lambda: safe_get(out_tcp)[0] != 200, timeout=10, what="TCP refused after Deny")
    # Allow again.
    status, _ = http_json("DELETE", cp.url + "/meshes/default/meshtrafficpermissions/deny-web")
    assert status == 200
    wait_until(lambda: safe_get(out_http) == (200, "backend=http"), timeout=10, what="allowed again")
    wait_until(lambda: safe_get(out_tcp) == (200, "backend=tcp"), timeout=10, what="TCP allowed again")


def test_certificates_rotate_under_traffic_without_errors(
    secure_cp: CpProcess, agents: AgentFactory, backends: BackendFactory
) -> None:
    cp = secure_cp
    cp.put(mesh("STRICT", expiration="30s"))
    cp.put(permission("allow-all", {"kind": "Mesh"}, "Allow"))
    b, web_app = backends("b1"), backends("web")
    out = free_port()
    backend = start(cp, agents, service_dp("backend-1", "backend", b.port, "http"))
    web = start(cp, agents, service_dp("web", "web", web_app.port, "http", {"backend": out}))
    wait_until(lambda: safe_get(out) == (200, "backend=b1"), timeout=15, what="traffic")
    seen_backend: set[str] = set()
    seen_web: set[str] = set()

    def rotated_twice() -> bool:
        seen_backend.update(serials(backend))
        seen_web.update(serials(web))
        return len(seen_backend) >= 3 and len(seen_web) >= 3

    with Load(out) as load:
        wait_until(rotated_twice, timeout=60, interval=0.5, what="three certificates on each side")
    print(f"rotations: backend {len(seen_backend) - 1}, web {len(seen_web) - 1}; requests ok {load.ok}")
    assert load.ok > 100
    assert load.failed == [], load.failed[:5]


def test_permissive_then_strict_migration_loses_no_request(
    secure_cp: CpProcess, agents: AgentFactory, backends: BackendFactory
) -> None:
    cp = secure_cp
    cp.put(mesh(None))
    cp.put(permission("allow-all", {"kind": "Mesh"}, "Allow"))
    b, web_app = backends("b1"), backends("web")
    out = free_port()
    backend = start(cp, agents, service_dp("backend-1", "backend", b.port, "http"))
    web = start(cp, agents, service_dp("web", "web", web_app.port, "http", {"backend": out}))
    wait_until(lambda: safe_get(out) == (200, "backend=b1"), timeout=15, what="plaintext traffic")
    with Load(out) as load:
        wait_until(lambda: load.ok > 50, timeout=10, what="load")
        cp.put(mesh("PERMISSIVE"))
        wait_until(lambda: serials(backend) and serials(web), timeout=15, what="identities delivered")
        before = load.ok
        wait_until(lambda: load.ok > before + 100, timeout=15, what="traffic in PERMISSIVE")
        cp.put(mesh("STRICT"))
        inbound = cp.get("/meshes/default/dataplanes/backend-1")["networking"]["inbound"][0]["port"]
        wait_until(lambda: safe_get(inbound)[0] != 200, timeout=15, what="plaintext refused once STRICT")
        before = load.ok
        wait_until(lambda: load.ok > before + 100, timeout=15, what="traffic in STRICT")
    assert load.failed == [], f"{len(load.failed)} failed during the migration: {load.failed[:5]}"


def run_agent(
    cp: CpProcess, tmp_path: Path, doc: dict[str, Any], token: str | None
) -> subprocess.CompletedProcess[str]:
    f = tmp_path / f"{doc['name']}-{free_port()}.json"
    f.write_text(json.dumps(doc))
    args = [*DP, "run", "--cp", cp.url, "--dataplane-file", str(f), "--cp-timeout", "10s"]
    if token is not None:
        t = tmp_path / f"{doc['name']}-{free_port()}.token"
        t.write_text(token)
        args += ["--token-file", str(t)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_bad_tokens_are_refused_with_a_clear_message(secure_cp: CpProcess, tmp_path: Path) -> None:
    cp = secure_cp
    cp.put(mesh("STRICT"))
    cp.put({"type": "Mesh", "name": "other"})
    doc = service_dp("web-1", "web", 8080, "http")

    from datetime import UTC, datetime, timedelta

    from atoll.pki import generate_signing_key, issue_dataplane_token

    forged = issue_dataplane_token(
        generate_signing_key("dataplane-token-signing-key-default-0001"),
        mesh="default",
        name="web-1",
        tags=None,
        valid_for=timedelta(hours=1),
        now=datetime.now(UTC),
    )
    expired = cp.dataplane_token("default", "web-1", validFor="1s")
    cases = {
        "missing": None,
        "forged": forged,
        "other mesh": cp.dataplane_token("other", "web-1"),
        "wrong name": cp.dataplane_token("default", "someone-else"),
        "garbage": "not-a-jwt",
    }
    for what, token in cases.items():
        run = run_agent(cp, tmp_path, doc, token)
        out = run.stdout + run.stderr
        assert run.returncode == 2, f"{what}: exit {run.returncode}: {out[-800:]}"
        assert "401" in out or "403" in out, f"{what}: {out[-800:]}"
        print(f"{what}: {[ln for ln in out.splitlines() if ln.strip()][-2:]}")

    def refused_as_expired() -> str | None:
        run = run_agent(cp, tmp_path, doc, expired)
        out = run.stdout + run.stderr
        return out if run.returncode == 2 and "expired" in out else None

    assert wait_until(refused_as_expired, timeout=15, interval=0.5, what="the 1s token to expire")

    # An unknown CA backend type is refused at the API, naming the field.
    status, body = http_json(
        "PUT",
        cp.url + "/meshes/bad",
        {"type": "Mesh", "name": "bad", "mtls": {"enabledBackend": "x", "backends": [{"name": "x", "type": "vault"}]}},
    )
    assert status == 400 and any("backends[0].type" in p["field"] for p in body["invalid_parameters"]), body
    socket.gethostname()  # keep the import used when run alone
