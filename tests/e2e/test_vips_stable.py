"""A zone control plane (a real ``atoll cp`` process on SQLite) keeps ``backend.mesh``'s VIP across
its restart and when a new service appears."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.mesh import CpProcess
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(180)


def _dp(name: str, service: str, port: int) -> dict[str, Any]:
    return {
        "type": "Dataplane",
        "mesh": "default",
        "name": name,
        "networking": {
            "address": "10.0.0.1",
            "inbound": [{"port": port, "tags": {"kuma.io/service": service}}],
            "transparentProxying": {"redirectPortInbound": 15006, "redirectPortOutbound": 15001},
        },
    }


def _vips(cp: CpProcess, *hostnames: str) -> dict[str, str]:
    """The mesh's hostname -> VIP, once every one of ``hostnames`` has one."""

    def listed() -> dict[str, str] | None:
        got = {i["hostname"]: i["vip"] for i in cp.get("/meshes/default/_vips")["items"]}
        return got if set(hostnames) <= got.keys() else None

    return wait_until(listed, timeout=30, what=f"VIPs of {', '.join(hostnames)}")


def test_backend_keeps_its_vip_across_a_restart_and_a_new_service(tmp_path: Path) -> None:
    cp = CpProcess(tmp_path, env={"ATOLL_MODE": "zone", "ATOLL_ZONE": "zone-1"}).start()
    try:
        cp.put({"type": "Mesh", "name": "default"})
        cp.put(_dp("web-1", "web", 8000))
        cp.put(_dp("backend-1", "backend", 8080))
        before = _vips(cp, "backend.mesh", "web.mesh")
        entries = cp.get("/meshes/default/vipallocations/vips")["entries"]
        cp.stop()

        cp.start()  # the same data directory: the same SQLite file
        after = _vips(cp, "backend.mesh", "web.mesh")
        assert after == before
        assert cp.get("/meshes/default/vipallocations/vips")["entries"] == entries  # nothing rewritten

        cp.put(_dp("api-1", "api", 9000))
        grown = _vips(cp, "backend.mesh", "web.mesh", "api.mesh")
        assert {h: grown[h] for h in before} == before
        assert grown["api.mesh"] not in before.values()
        # the GUI's services page shows the same names and VIPs (read from this CP's reconciler)
        services = cp.get("/gui/api/meshes/default/services")["items"]
        backend = next(s for s in services if s["service"] == "backend")
        assert f"backend.mesh {grown['backend.mesh']}" in backend["names"], backend
    finally:
        cp.stop()
