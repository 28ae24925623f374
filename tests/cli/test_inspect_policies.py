"""`atoll inspect dataplane --policies`, `atoll inspect policy` and the warnings `atoll apply` prints,
run as subprocesses against a real control plane (the ``cp`` fixture of ``conftest``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import Cp
from tests.cli.test_cli_e2e import Atoll

pytestmark = pytest.mark.timeout(120)

MESH = "insp"


@pytest.fixture
def atoll(cp: Cp, tmp_path: Path) -> Atoll:
    return Atoll(cp.url, tmp_path)


def _dp(name: str, service: str, outbound: str | None) -> dict[str, object]:
    net: dict[str, object] = {
        "address": "10.0.0.1",
        "inbound": [{"port": 8080, "tags": {"kuma.io/service": service, "kuma.io/protocol": "http"}}],
    }
    if outbound:
        net["outbound"] = [{"port": 10001, "tags": {"kuma.io/service": outbound}}]
    return {"type": "Dataplane", "mesh": MESH, "name": name, "networking": net}


def _timeout(name: str, top: dict[str, str], to: dict[str, str], default: dict[str, object]) -> dict[str, object]:
    return {
        "type": "MeshTimeout",
        "mesh": MESH,
        "name": name,
        "spec": {"targetRef": top, "to": [{"targetRef": to, "default": default}]},
    }


DOCS = [
    {"type": "Mesh", "name": MESH, "skipCreatingInitialPolicies": ["*"]},
    _dp("web-1", "web", "backend"),
    _dp("backend-1", "backend", None),
    _timeout("z-mesh", {"kind": "Mesh"}, {"kind": "Mesh"}, {"connectionTimeout": "1s"}),
    _timeout("a-mesh", {"kind": "Mesh"}, {"kind": "Mesh"}, {"connectionTimeout": "2s", "idleTimeout": "9s"}),
    _timeout(
        "to-backend",
        {"kind": "MeshService", "name": "web"},
        {"kind": "MeshService", "name": "backend"},
        {"idleTimeout": "30s"},
    ),
]


@pytest.fixture
def applied(atoll: Atoll) -> Atoll:
    atoll.ok("apply", "-f", atoll.file("all.yaml", yaml.safe_dump_all(DOCS)))
    return atoll


def test_dataplane_policies_as_text_shows_contributors_in_order(applied: Atoll) -> None:
    out = applied.ok("inspect", "dataplane", "web-1", "-m", MESH, "--policies")
    lines = out.splitlines()
    assert lines[0] == f"Dataplane web-1 (mesh {MESH}): 3 policies select it"
    assert lines[1:4] == ["  MeshTimeout/z-mesh", "  MeshTimeout/a-mesh", "  MeshTimeout/to-backend"]
    start = lines.index("outbound backend (127.0.0.1:10001)")
    assert lines[start + 1] == "  MeshTimeout: 3 items, in merge order"
    assert lines[start + 2].startswith("    1. z-mesh  to Mesh: ")
    assert lines[start + 3].startswith("    2. a-mesh  to Mesh: ")
    assert lines[start + 4].startswith("    3. to-backend  to MeshService backend: ")
    settings = json.loads(lines[start + 5].removeprefix("    => "))
    assert (settings["connectionTimeout"], settings["idleTimeout"]) == (2.0, 30.0)
    assert "inbound web (10.0.0.1:8080)" in lines
    assert lines[lines.index("inbound web (10.0.0.1:8080)") + 1] == "  no policy applies"


def test_dataplane_policies_as_json_is_the_api_answer(applied: Atoll) -> None:
    body = json.loads(applied.ok("inspect", "dataplane", "backend-1", "-m", MESH, "--policies", "-o", "json"))
    assert [p["name"] for p in body["policies"]] == ["z-mesh", "a-mesh"]
    assert body["outbounds"] == []


def test_inspect_policy_lists_the_proxies_it_selects(applied: Atoll) -> None:
    out = applied.ok("inspect", "policy", "meshtimeout", "to-backend", "-m", MESH)
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert rows[0] == ["DATAPLANE", "ZONE", "INBOUNDS", "OUTBOUNDS"]
    assert rows[2:] == [["web-1", "-", "-", "backend"]]  # under the rule line
    items = json.loads(applied.ok("inspect", "policy", "MeshTimeout", "z-mesh", "-m", MESH, "-o", "json"))
    assert [i["dataplane"] for i in items] == ["backend-1", "web-1"]
    err = applied.fail("inspect", "policy", "dataplane", "web-1", "-m", MESH)
    assert "Dataplane is not a policy type" in err


def test_apply_prints_what_is_stored_and_not_enforced(applied: Atoll) -> None:
    route = {
        "type": "MeshRetry",
        "mesh": MESH,
        "name": "gw-retry",
        "spec": {
            "targetRef": {"kind": "MeshGateway", "name": "edge"},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": {"tcp": {"maxConnectAttempt": 2}}}],
        },
    }
    f = applied.file("retry.yaml", yaml.safe_dump(route))
    warning = "  stored, not enforced: spec.targetRef.kind: MeshGateway: gateways"
    dry = applied("apply", "--dry-run", "-f", f)
    assert dry.code == 0 and dry.err.startswith(warning), dry.err
    r = applied("apply", "-f", f)
    assert r.code == 0
    assert r.out.splitlines() == [f"meshretry/gw-retry created (mesh {MESH})"]
    assert r.err.startswith(warning), r.err
    again = applied("apply", "-f", f)  # unchanged: not written, still said
    assert again.out.splitlines() == [f"meshretry/gw-retry unchanged (mesh {MESH})"]
    assert again.err.startswith(warning)
    clean = applied("apply", "-f", applied.file("t.yaml", yaml.safe_dump(DOCS[3])))
    assert clean.code == 0 and clean.err == ""
