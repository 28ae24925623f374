"""Real control-plane processes: the mesh ``default`` a fresh CP creates (``atoll.cp.default_mesh``),
the data-dir lock (``atoll.cp.data_dir_lock``), global's log line naming the KDS CA file, and the
refusal to delete a mesh that still has Dataplanes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from atoll.cp.data_dir_lock import LOCK_NAME, lock_data_dir
from atoll.errors import AtollError
from tests.helpers import REPO, CpProcess, CpProcesses, free_port, wait_cp_ready, wait_until

DATAPLANE = {
    "type": "Dataplane",
    "mesh": "default",
    "name": "web-1",
    "networking": {"address": "127.0.0.1", "inbound": [{"port": 8080, "tags": {"kuma.io/service": "web"}}]},
}
DEFAULT_POLICIES = {
    "meshtimeouts": ["mesh-timeout-all-default"],
    "meshretries": ["mesh-retry-all-default"],
    "meshcircuitbreakers": ["mesh-circuit-breaker-all-default"],
}


@pytest.fixture
def cps() -> Iterator[CpProcesses]:
    procs = CpProcesses()
    try:
        yield procs
    finally:
        procs.close()


def start(cps: CpProcesses, data: Path, log: Path, **env: str) -> CpProcess:
    cp = cps.start(data, log, {"ATOLL_SHUTDOWN_TIMEOUT": "3", **env})
    wait_cp_ready(cp.proc, cp.diag, cp.log, timeout=30)
    return cp


def stop(cp: CpProcess) -> None:
    cp.proc.send_signal(signal.SIGTERM)
    assert cp.proc.wait(timeout=20) == 0, cp.log.read_text()


def names(cp: CpProcess, path: str) -> list[str]:
    return [item["name"] for item in httpx.get(cp.api + path, timeout=10).json()["items"]]


def test_a_fresh_standalone_cp_creates_mesh_default_with_its_policies_and_again_at_start_after_delete(
    cps: CpProcesses, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    cp = start(cps, data, tmp_path / "cp-1.log")
    assert names(cp, "/meshes") == ["default"]
    for plural, expected in DEFAULT_POLICIES.items():
        assert names(cp, f"/meshes/default/{plural}") == expected
    assert "created mesh default with its default policies" in cp.log.read_text()

    # deleted while running: it stays deleted (Kuma checks at start only)
    assert httpx.delete(cp.api + "/meshes/default", timeout=10).status_code == 200
    assert names(cp, "/meshes") == []
    stop(cp)
    # the next start creates it again, as Kuma's EnsureDefaultMeshExists does
    cp = start(cps, data, tmp_path / "cp-2.log")
    assert names(cp, "/meshes") == ["default"]
    # an existing default mesh is left as it is: an edit survives a restart
    r = httpx.put(cp.api + "/meshes/default", json={"type": "Mesh", "name": "default", "labels": {"team": "a"}})
    assert r.status_code == 200, r.text
    stop(cp)
    cp = start(cps, data, tmp_path / "cp-3.log")
    assert httpx.get(cp.api + "/meshes/default", timeout=10).json()["labels"] == {"team": "a"}


def test_skip_default_mesh_and_a_federated_zone_create_no_mesh(cps: CpProcesses, tmp_path: Path) -> None:
    cp = start(cps, tmp_path / "skip", tmp_path / "skip.log", ATOLL_SKIP_DEFAULT_MESH="true")
    assert names(cp, "/meshes") == []
    assert "not creating mesh default" in cp.log.read_text()
    kds_port = free_port()
    glob = start(cps, tmp_path / "global", tmp_path / "global.log", ATOLL_MODE="global", ATOLL_KDS_PORT=str(kds_port))
    assert names(glob, "/meshes") == ["default"]
    # global's log says where the KDS CA file is, and how a zone uses it
    ca = tmp_path / "global" / "kds-tls.crt"
    assert f"KDS CA file (self-signed): {ca}; zones trust it with --global-ca-file {ca}" in glob.log.read_text()
    token = httpx.post(glob.api + "/tokens/zone", json={"zone": "east", "scope": ["cp"]}, timeout=10).json()["token"]
    (tmp_path / "east.token").write_text(token)
    zone_env = {
        "ATOLL_MODE": "zone",
        "ATOLL_ZONE": "east",
        "ATOLL_GLOBAL_ADDRESS": f"grpcs://127.0.0.1:{kds_port}",
        "ATOLL_ZONE_TOKEN_FILE": str(tmp_path / "east.token"),
        "ATOLL_GLOBAL_CA_FILE": str(ca),
    }
    zone = start(cps, tmp_path / "east", tmp_path / "east.log", **zone_env)
    wait_until(lambda: names(zone, "/meshes") == ["default"], timeout=30, what="global's mesh default at the zone")
    assert "created mesh default" not in zone.log.read_text()  # it came from global over KDS


def test_a_second_cp_on_a_data_dir_in_use_exits_naming_the_holder(cps: CpProcesses, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start(cps, data, tmp_path / "first.log")
    second = cps.start(data, tmp_path / "second.log", {})
    assert second.proc.wait(timeout=30) == 1
    out = second.log.read_text()
    assert f"data dir {data} is in use by another control plane (process {first.proc.pid} holds" in out
    assert "--data-dir" in out
    assert httpx.get(first.api + "/meshes", timeout=10).status_code == 200  # the first is untouched
    # a killed holder leaves the file but not the lock: the next CP starts
    first.proc.kill()
    first.proc.wait(timeout=10)
    assert (data / LOCK_NAME).exists()
    start(cps, data, tmp_path / "third.log")


def test_the_lock_refuses_a_live_holder_and_frees_with_it(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from atoll.cp.data_dir_lock import lock_data_dir;"
            " lock_data_dir(Path(sys.argv[1])); print('locked', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        with pytest.raises(AtollError, match=f"process {holder.pid} holds"):
            lock_data_dir(tmp_path)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    lock = lock_data_dir(tmp_path)
    assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    lock.release()
    lock.release()  # idempotent


def test_deleting_a_mesh_with_dataplanes_is_refused_with_kumas_reason_unless_forced(
    cps: CpProcesses, tmp_path: Path
) -> None:
    cp = start(cps, tmp_path / "data", tmp_path / "cp.log", ATOLL_AUTH="none")
    r = httpx.put(cp.api + "/meshes/default/dataplanes/web-1", json=DATAPLANE, timeout=10)
    assert r.status_code == 201, r.text
    r = httpx.delete(cp.api + "/meshes/default", timeout=10)
    assert r.status_code == 400, r.text
    problem = r.json()
    (field,) = problem["invalid_parameters"]
    assert field["field"] == "mesh"
    assert field["reason"].startswith("unable to delete mesh, there are still some dataplanes attached (1: web-1)")
    assert "force=true" in field["reason"] and "--force" in field["reason"]
    assert names(cp, "/meshes") == ["default"]
    r = httpx.delete(cp.api + "/meshes/default", params={"force": "true"}, timeout=10)
    assert r.status_code == 200, r.text
    assert names(cp, "/meshes") == []
