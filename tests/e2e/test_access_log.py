"""MeshAccessLog on real Envoy sidecars configured by a real control plane: file, JSON and TCP
backends fill Kuma's placeholders; a log path Envoy cannot open is a NACK of that proxy only."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import AgentFactory, BackendFactory
from tests.e2e.mesh import CpProcess
from tests.helpers import ATOLL, free_port, http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]

PLAIN = "%KUMA_MESH%|%KUMA_SOURCE_SERVICE%|%KUMA_DESTINATION_SERVICE%|%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%|"
PLAIN += "%KUMA_TRAFFIC_DIRECTION%|%RESPONSE_CODE%|%REQ(:PATH)%"


def _dp(
    name: str, service: str, app_port: int, protocol: str, outbound: dict[str, int] | None = None
) -> dict[str, Any]:
    networking: dict[str, Any] = {
        "address": "127.0.0.1",
        "inbound": [
            {
                "port": free_port(),
                "servicePort": app_port,
                "tags": {"kuma.io/service": service, "kuma.io/protocol": protocol},
            }
        ],
    }
    if outbound:
        networking["outbound"] = [{"port": p, "tags": {"kuma.io/service": s}} for s, p in outbound.items()]
    return {"type": "Dataplane", "mesh": "default", "name": name, "networking": networking}


def _access_log(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": "MeshAccessLog", "mesh": "default", "name": name, "spec": spec}


def _file(path: Path, fmt: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"path": str(path)}
    if fmt is not None:
        body["format"] = fmt
    return {"type": "File", "file": body}


@contextlib.contextmanager
def _collector() -> Iterator[tuple[int, list[str]]]:
    """A TCP log collector on a loopback port: every line any connection sends, in arrival order."""
    server = socket.create_server(("127.0.0.1", 0))
    lines: list[str] = []
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, conn.makefile("r") as stream:
            for line in stream:
                lines.append(line.rstrip("\n"))

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], lines
    finally:
        stop.set()
        thread.join(5)
        server.close()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _first(path: Path, needle: str) -> str | None:
    return next((ln for ln in _lines(path) if needle in ln), None)


def test_file_json_and_tcp_backends_log_with_kuma_placeholders(
    cp: CpProcess, agents: AgentFactory, backends: BackendFactory, tmp_path: Path
) -> None:
    api_app, db_app, web_app = backends("api"), backends("db"), backends("web")
    out_api, out_db = free_port(), free_port()
    out_log, out_json, in_log = tmp_path / "out.log", tmp_path / "out.json", tmp_path / "in.log"
    json_format = [
        {"key": "mesh", "value": "%KUMA_MESH%"},
        {"key": "source", "value": "%KUMA_SOURCE_SERVICE%"},
        {"key": "destination", "value": "%KUMA_DESTINATION_SERVICE%"},
        {"key": "direction", "value": "%KUMA_TRAFFIC_DIRECTION%"},
        {"key": "status", "value": "%RESPONSE_CODE%"},
        {"key": "path", "value": "%REQ(:PATH)%"},
    ]
    with _collector() as (collector_port, received):
        cp.put(
            _access_log(
                "everything",
                {
                    "targetRef": {"kind": "Mesh"},
                    "to": [
                        {
                            "targetRef": {"kind": "Mesh"},
                            "default": {
                                "backends": [
                                    _file(out_log, {"type": "Plain", "plain": PLAIN}),
                                    _file(out_json, {"type": "Json", "json": json_format}),
                                ]
                            },
                        },
                        {
                            "targetRef": {"kind": "MeshService", "name": "al-db"},
                            "default": {
                                "backends": [{"type": "Tcp", "tcp": {"address": f"127.0.0.1:{collector_port}"}}]
                            },
                        },
                    ],
                    "from": [{"targetRef": {"kind": "Mesh"}, "default": {"backends": [_file(in_log)]}}],
                },
            )
        )
        agents(cp, _dp("al-api-1", "al-api", api_app.port, "http"))
        db = _dp("al-db-1", "al-db", db_app.port, "tcp")
        agents(cp, db)
        agents(cp, _dp("al-web-1", "al-web", web_app.port, "http", {"al-api": out_api, "al-db": out_db}))

        wait_until(lambda: http_get(out_api, "/first")[0] == 200, timeout=15, what="web -> api through both sidecars")
        assert http_get(out_api, "/logged") == (200, "backend=api")
        assert http_get(out_db, "/over-tcp") == (200, "backend=db")

        # plain file: every Kuma placeholder filled, Envoy's operators evaluated
        line = wait_until(lambda: _first(out_log, "/logged"), timeout=10, what="outbound plain log line")
        assert line == "default|al-web|al-api|127.0.0.1|OUTBOUND|200|/logged"
        # json file: one JSON object per line
        entries = [json.loads(ln) for ln in wait_until(lambda: _first(out_json, "/logged") and _lines(out_json))]
        assert {
            "mesh": "default",
            "source": "al-web",
            "destination": "al-api",
            "direction": "OUTBOUND",
            "status": 200,
            "path": "/logged",
        } in entries
        # inbound of api, Kuma's default HTTP format: unknown source, api as destination
        line = wait_until(lambda: _first(in_log, "/logged"), timeout=10, what="inbound default-format line")
        assert re.fullmatch(
            r'\[\S+\] default "GET /logged HTTP/1\.1" 200 - 0 11 \d+ \S+ "[^"]*" "[^"]*" "[^"]*" "[^"]*" '
            rf'"127\.0\.0\.1:\d+" "unknown" "al-api" "127\.0\.0\.1" "127\.0\.0\.1:{api_app.port}"',
            line,
        ), line
        # TCP backend (through the agent's pipe): the tcp_proxy of the outbound to al-db, default
        # TCP format; al-db's to[] entry replaced the Mesh entry's backends
        db_port = db["networking"]["inbound"][0]["port"]
        tcp_line = wait_until(lambda: next((ln for ln in received if "al-db" in ln), None), timeout=10)
        assert re.fullmatch(
            rf"\[\S+\] - default 127\.0\.0\.1\(al-web\)->127\.0\.0\.1:{db_port}\(al-db\) took \d+ms, "
            r"sent \d+ bytes, received: \d+ bytes",
            tcp_line,
        ), tcp_line
        assert not any("al-db" in ln for ln in _lines(out_log))


def _inspect_dataplanes(cp: CpProcess) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [*ATOLL, "--cp", cp.url, "inspect", "dataplanes", "-m", "default", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return {d["name"]: d["dataplaneInsight"] for d in json.loads(done.stdout)}


def test_log_path_in_a_missing_directory_is_a_nack_of_that_proxy_only(
    cp: CpProcess, agents: AgentFactory, backends: BackendFactory, tmp_path: Path
) -> None:
    api_app, web_app = backends("api"), backends("web")
    out_api = free_port()
    missing = tmp_path / "no-such-dir" / "access.log"
    policy = _access_log(
        "broken",
        {
            "targetRef": {"kind": "Dataplane", "name": "al-web-1"},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": {"backends": [_file(missing)]}}],
        },
    )
    cp.put(policy)
    api = _dp("al-api-1", "al-api", api_app.port, "http")
    agents(cp, api)
    web = _dp("al-web-1", "al-web", web_app.port, "http", {"al-api": out_api})
    web_agent = agents(cp, web, wait=False)

    def nacked() -> dict[str, Any] | None:
        insight = cp.insight("default", "al-web-1")
        return insight if insight.get("nackCount", 0) > 0 else None

    insight = wait_until(nacked, timeout=20, what="a NACK recorded for al-web-1")
    assert f"unable to open file '{missing}'" in insight["lastNackError"], insight["lastNackError"]
    assert insight["online"] is True and insight["xds"]["lds"]["nacks"] >= 1
    shown = _inspect_dataplanes(cp)
    assert f"unable to open file '{missing}'" in shown["al-web-1"]["lastNackError"]
    assert shown["al-api-1"].get("nackCount", 0) == 0

    # Envoy keeps running (no crash loop): its other listener (the inbound) serves, and the other
    # proxy got its config
    assert web_agent.proc is not None and web_agent.proc.poll() is None
    web_inbound = web["networking"]["inbound"][0]["port"]
    assert wait_until(lambda: http_get(web_inbound)[0] == 200, timeout=10) is True
    assert http_get(api["networking"]["inbound"][0]["port"]) == (200, "backend=api")
    assert web_agent.proc.poll() is None

    # fixing the path is picked up: the outbound listener arrives and logs
    fixed = tmp_path / "access.log"
    policy["spec"]["to"][0]["default"]["backends"] = [_file(fixed)]
    cp.put(policy)
    wait_until(lambda: http_get(out_api, "/after-fix")[0] == 200, timeout=20, what="outbound after the fix")
    wait_until(lambda: _first(fixed, "/after-fix"), timeout=10, what="a log line after the fix")
