"""A real control-plane process (``python -m atoll.cp``) on free loopback ports with an SQLite data dir:
serving, readiness, graceful stop on SIGTERM/SIGINT, persistence across a restart, startup failures."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import CpProcess, CpProcesses, free_port, wait_cp_ready

DATAPLANE = """\
type: Dataplane
mesh: default
name: web-1
networking:
  address: 127.0.0.1
  inbound:
    - port: 8080
      servicePort: 8080
      tags:
        kuma.io/service: web
"""


class Cp(CpProcess):
    def logs(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]


StartCp = Callable[..., Cp]


@pytest.fixture
def start_cp(tmp_path: Path) -> Iterator[StartCp]:
    cps = CpProcesses()

    def start(data_dir: Path, *, api_port: int | None = None, extra: dict[str, str] | None = None) -> Cp:
        log = tmp_path / f"cp-{len(cps.procs)}.log"
        env = {
            "ATOLL_LOG_FORMAT": "json",
            "ATOLL_SHUTDOWN_TIMEOUT": "5",
            "ATOLL_SKIP_DEFAULT_MESH": "true",
            **(extra or {}),
        }
        p = cps.start(data_dir, log, env, api_port=api_port)
        return Cp(p.proc, p.api, p.diag, p.log)

    yield start
    cps.close()


def wait_ready(cp: Cp) -> None:
    wait_cp_ready(cp.proc, cp.diag, cp.log, timeout=20)


def stop(cp: Cp, sig: signal.Signals = signal.SIGTERM) -> int:
    cp.proc.send_signal(sig)
    return cp.proc.wait(timeout=15)


def test_serves_stops_gracefully_and_keeps_resources_across_a_restart(start_cp: StartCp, tmp_path: Path) -> None:
    data = tmp_path / "data"
    cp = start_cp(data)
    wait_ready(cp)
    assert httpx.get(cp.diag + "/healthy").status_code == 200
    index = httpx.get(cp.api + "/").json()
    assert (index["product"], index["mode"]) == ("Atoll", "standalone")

    yaml_ct = {"content-type": "application/yaml"}
    r = httpx.put(cp.api + "/meshes/default", content="type: Mesh\nname: default\n", headers=yaml_ct)
    assert r.status_code == 201, r.text
    r = httpx.put(cp.api + "/meshes/default/dataplanes/web-1", content=DATAPLANE, headers=yaml_ct)
    assert r.status_code == 201, r.text
    r = httpx.put(cp.api + "/meshes/default/dataplanes/web-1", content=DATAPLANE, headers={**yaml_ct, "If-Match": "1"})
    assert r.status_code == 200 and r.headers["etag"] == '"2"'
    before = httpx.get(cp.api + "/meshes/default/dataplanes/web-1").json()
    policies = httpx.get(cp.api + "/meshes/default/meshtimeouts").json()
    assert policies["total"] >= 1

    metrics = httpx.get(cp.diag + "/metrics").text
    assert 'atoll_resources{type="Dataplane"} 1.0' in metrics
    assert 'atoll_api_requests_total{method="PUT",route="/meshes/{mesh}/dataplanes/{name}",status="201"} 1.0' in metrics
    assert 'atoll_store_operations_total{operation="create",outcome="ok"}' in metrics

    assert stop(cp) == 0
    logs = cp.logs()
    assert logs, cp.log.read_text()
    assert all({"time", "level", "logger", "msg"} <= set(rec) for rec in logs)
    assert any(rec["msg"] == "control plane stopped: received SIGTERM" for rec in logs)
    with pytest.raises(httpx.ConnectError):
        httpx.get(cp.diag + "/ready")
    assert (data / "atoll.db").is_file()

    again = start_cp(data)
    wait_ready(again)
    r = httpx.get(again.api + "/meshes/default/dataplanes/web-1")
    assert r.status_code == 200
    assert r.json() == before
    assert r.headers["etag"] == '"2"'
    assert httpx.get(again.api + "/meshes/default/meshtimeouts").json()["total"] == policies["total"]
    assert stop(again, signal.SIGINT) == 0


def test_a_busy_api_port_exits_1_and_says_why(start_cp: StartCp, tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        cp = start_cp(tmp_path / "data", api_port=port)
        assert cp.proc.wait(timeout=20) == 1
    reasons = [rec["msg"] for rec in cp.logs() if rec["level"] == "error"]
    assert f"stopping: component api failed: cannot listen on 127.0.0.1:{port}: Address already in use" in reasons


def test_invalid_configuration_exits_2_naming_the_option(start_cp: StartCp, tmp_path: Path) -> None:
    cp = start_cp(tmp_path / "data", extra={"ATOLL_LOG_LEVEL": "loud"})
    assert cp.proc.wait(timeout=20) == 2
    assert (
        'log_level: must be one of debug, info, warning, error, got "loud" (from ATOLL_LOG_LEVEL)' in cp.log.read_text()
    )


def test_a_zeroed_database_in_a_data_dir_in_use_exits_1_and_says_why(start_cp: StartCp, tmp_path: Path) -> None:
    data = tmp_path / "data"
    cp = start_cp(data)
    wait_ready(cp)
    r = httpx.put(cp.api + "/meshes/default", json={"type": "Mesh", "name": "default"})
    assert r.status_code == 201, r.text
    assert stop(cp) == 0
    (data / "atoll.db").write_bytes(b"")
    again = start_cp(data)
    assert again.proc.wait(timeout=20) == 1
    reasons = [str(rec["msg"]) for rec in again.logs() if rec["level"] == "error"]
    assert any("is empty (0 bytes)" in m and "allow-empty" in m for m in reasons), reasons
