"""`atoll inspect vips` and the service names `atoll inspect dataplane` shows for a transparent-proxied
Dataplane, run as subprocesses against a real control plane (the ``cp`` fixture of ``conftest``);
and the VipAllocation the CP writes is read-only to clients."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from tests.cli.conftest import Cp
from tests.cli.test_cli_e2e import Atoll
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(120)

MESH = "names"


@pytest.fixture
def atoll(cp: Cp, tmp_path: Path) -> Atoll:
    return Atoll(cp.url, tmp_path)


def _dp(name: str, service: str, port: int, **tags: str) -> dict[str, object]:
    return {
        "type": "Dataplane",
        "mesh": MESH,
        "name": name,
        "networking": {
            "address": "10.0.0.1",
            "inbound": [{"port": port, "tags": {"kuma.io/service": service, **tags}}],
            "transparentProxying": {"redirectPortInbound": 15006, "redirectPortOutbound": 15001},
        },
    }


DOCS = [
    {"type": "Mesh", "name": MESH, "skipCreatingInitialPolicies": ["*"]},
    _dp("backend-1", "backend", 8080, **{"kuma.io/instance": "b1"}),
    _dp("web-1", "web", 8000),
    {
        "type": "VirtualOutbound",
        "mesh": MESH,
        "name": "per-instance",
        "selectors": [{"match": {"kuma.io/service": "backend"}}],
        "conf": {
            "host": "{{.svc}}.{{.inst}}.mesh",
            "port": "8080",
            "parameters": [
                {"name": "svc", "tagKey": "kuma.io/service"},
                {"name": "inst", "tagKey": "kuma.io/instance"},
            ],
        },
    },
]


def test_inspect_vips_lists_every_name_with_its_vip(atoll: Atoll, cp: Cp) -> None:
    atoll.ok("apply", "-f", atoll.file("all.yaml", yaml.safe_dump_all(DOCS)))

    def listed() -> list[dict[str, object]] | None:
        items = json.loads(atoll.ok("inspect", "vips", "-m", MESH, "-o", "json"))["items"]
        return items if len(items) == 3 else None

    items = wait_until(listed, timeout=30, what="three names")
    assert [(i["hostname"], i["ports"], i["service"], i["tags"], i["origin"]) for i in items] == [
        ("backend.b1.mesh", [8080], "backend", {"kuma.io/instance": "b1"}, "VirtualOutbound/per-instance"),
        ("backend.mesh", [80, 8080], "backend", {}, "service"),
        ("web.mesh", [80, 8000], "web", {}, "service"),
    ]
    vips = [i["vip"] for i in items]
    assert len(set(vips)) == 3 and all(str(v).startswith("240.") for v in vips)
    table = atoll.ok("inspect", "vips", "-m", MESH)
    assert "HOSTNAME" in table and "backend.b1.mesh" in table and "VirtualOutbound/per-instance" in table

    shown = yaml.safe_load(atoll.ok("inspect", "dataplane", "web-1", "-m", MESH))
    by_vip = {i["hostname"]: i["vip"] for i in items}
    assert f"backend.mesh {by_vip['backend.mesh']}:80,8080" in shown["serviceNames"]

    # The allocation is the CP's: clients may read it, never write it.
    stored = httpx.get(f"{cp.url}/meshes/{MESH}/vipallocations/vips", timeout=10)
    assert stored.status_code == 200, stored.text
    assert {e["hostname"]: e["vip"] for e in stored.json()["entries"]} == by_vip
    put = httpx.put(f"{cp.url}/meshes/{MESH}/vipallocations/vips", json=stored.json(), timeout=10)
    assert put.status_code == 405
    assert put.json()["details"] == "VipAllocation resources are written by the control plane itself, never by clients"


def test_inspect_vips_of_an_unknown_mesh_names_it(atoll: Atoll) -> None:
    err = atoll.fail("inspect", "vips", "-m", "no-such-mesh")
    assert 'mesh "no-such-mesh" does not exist' in err
