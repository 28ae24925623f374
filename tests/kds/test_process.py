"""Real processes: ``python -m atoll.cp`` as global and as zones (configured by ``ATOLL_*`` only),
syncing over KDS with TLS (global's generated certificate) and zone tokens issued by global."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import CpProcess, CpProcesses, free_port, wait_cp_ready, wait_until


@dataclass
class Cp(CpProcess):
    data: Path

    def get(self, path: str) -> Any:
        return httpx.get(self.api + path, timeout=5).json()


StartCp = Callable[..., Cp]


@pytest.fixture
def start_cp(tmp_path: Path) -> Iterator[StartCp]:
    cps = CpProcesses()

    def start(name: str, env: dict[str, str]) -> Cp:
        data, log = tmp_path / name, tmp_path / f"{name}.log"
        p = cps.start(data, log, {"ATOLL_SHUTDOWN_TIMEOUT": "3", "ATOLL_SKIP_DEFAULT_MESH": "true", **env})
        return Cp(p.proc, p.api, p.diag, p.log, data)

    try:
        yield start
    finally:
        cps.close()


def wait_ready(cp: Cp) -> None:
    wait_cp_ready(cp.proc, cp.diag, cp.log, timeout=30)


def test_global_and_two_zone_processes_sync_and_refuse_a_bad_token(start_cp: StartCp, tmp_path: Path) -> None:
    kds_port = free_port()
    glob = start_cp("global", {"ATOLL_MODE": "global", "ATOLL_KDS_PORT": str(kds_port)})
    wait_ready(glob)
    ca = glob.data / "kds-tls.crt"
    assert ca.is_file()
    r = httpx.put(glob.api + "/meshes/default", json={"type": "Mesh", "name": "default"})
    assert r.status_code == 201, r.text

    zones: dict[str, Cp] = {}
    for name in ("zone-1", "zone-2"):
        r = httpx.post(glob.api + "/tokens/zone", json={"zone": name, "scope": ["cp"]})
        assert r.status_code == 200, r.text
        token_file = tmp_path / f"{name}.token"
        token_file.write_text(r.json()["token"])
        zones[name] = start_cp(
            name,
            {
                "ATOLL_MODE": "zone",
                "ATOLL_ZONE": name,
                "ATOLL_GLOBAL_ADDRESS": f"grpcs://127.0.0.1:{kds_port}",
                "ATOLL_ZONE_TOKEN_FILE": str(token_file),
                "ATOLL_GLOBAL_CA_FILE": str(ca),
            },
        )
    for cp in zones.values():
        wait_ready(cp)

    def online() -> list[str]:
        body = glob.get("/zones+insights")
        return sorted(i["name"] for i in body["items"] if i["zoneInsight"]["online"])

    wait_until(lambda: online() == ["zone-1", "zone-2"], timeout=30, what="both zones online at global")

    # Global's Mesh (with its initial policies) reached the zones; zones refuse to write it.
    for cp in zones.values():
        mesh = wait_until(lambda cp=cp: httpx.get(cp.api + "/meshes/default", timeout=5), what="mesh in zone")
        assert mesh.status_code == 200 and mesh.json()["labels"]["kuma.io/origin"] == "global"
        r = httpx.put(cp.api + "/meshes/default", json={"type": "Mesh", "name": "default"})
        assert r.status_code == 405, r.text

    # A zone's Dataplane shows up at global, listed with its zone.
    dp = {
        "type": "Dataplane",
        "mesh": "default",
        "name": "web-1",
        "networking": {"address": "127.0.0.1", "inbound": [{"port": 8080, "tags": {"kuma.io/service": "web"}}]},
    }
    r = httpx.put(zones["zone-1"].api + "/meshes/default/dataplanes/web-1", json=dp)
    assert r.status_code == 201, r.text

    def synced_dp() -> list[Any]:
        return [i for i in glob.get("/meshes/default/dataplanes+insights")["items"] if "web-1" in i["name"]]

    (item,) = wait_until(synced_dp, timeout=20, what="zone-1's Dataplane at global")
    assert item["labels"]["kuma.io/zone"] == "zone-1" and item["labels"]["kuma.io/display-name"] == "web-1"
    assert item["name"] != "web-1"

    # A zone with a token that is not a valid zone token is refused; it keeps running on its own.
    bad_token = tmp_path / "zone-3.token"
    bad_token.write_text("not-a-token")
    bad = start_cp(
        "zone-3",
        {
            "ATOLL_MODE": "zone",
            "ATOLL_ZONE": "zone-3",
            "ATOLL_GLOBAL_ADDRESS": f"grpcs://127.0.0.1:{kds_port}",
            "ATOLL_ZONE_TOKEN_FILE": str(bad_token),
            "ATOLL_GLOBAL_CA_FILE": str(ca),
        },
    )
    # Refused, it keeps running (healthy) but is not ready: /ready says it is not federated, and why.
    wait_until(lambda: "zone token refused" in glob.log.read_text(), timeout=20, what="global refusing zone-3")
    wait_until(lambda: "global refused zone zone-3" in bad.log.read_text(), timeout=20, what="zone-3 told why")
    assert "zone-3" not in [i["name"] for i in glob.get("/zones+insights")["items"]]
    assert bad.proc.poll() is None
    assert httpx.get(bad.diag + "/healthy", timeout=5).status_code == 200

    def not_federated() -> str:
        r = httpx.get(bad.diag + "/ready", timeout=5)
        assert r.status_code == 503, r.text
        return r.text

    reason = wait_until(not_federated, timeout=20, what="zone-3 /ready not federated")
    assert f"kds: zone zone-3 is not federated: global at grpcs://127.0.0.1:{kds_port} refused it:" in reason
    assert "zone token rejected (malformed)" in reason
    # A good token in the token file (re-read on every connect) makes it federated, hence ready.
    r = httpx.post(glob.api + "/tokens/zone", json={"zone": "zone-3", "scope": ["cp"]})
    bad_token.write_text(r.json()["token"])
    wait_cp_ready(bad.proc, bad.diag, bad.log, timeout=40)
    wait_until(lambda: "zone-3" in [i["name"] for i in glob.get("/zones+insights")["items"]], timeout=20)
