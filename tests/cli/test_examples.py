"""Every file of ``examples/`` applies to a real control plane (``atoll apply``) and reads back, so the
examples README links to never rot; the proxies' files also load as ``atoll dp run`` reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atoll.dp import load_proxy_resource, parse_vars, proxy_type_of
from tests.cli.conftest import Cp
from tests.cli.test_cli_e2e import Atoll
from tests.helpers import REPO

pytestmark = pytest.mark.timeout(120)

EXAMPLES = REPO / "examples"
DP_VARS = ("port=18080", "app_port=8080")


@pytest.fixture
def atoll(cp: Cp, tmp_path: Path) -> Atoll:
    return Atoll(cp.url, tmp_path)


def test_every_example_applies_and_reads_back(atoll: Atoll) -> None:
    files = sorted(p for p in EXAMPLES.rglob("*.yaml"))
    assert {p.relative_to(EXAMPLES).as_posix() for p in files} >= {
        "mesh.yaml",
        "dataplane.yaml",
        "zone-ingress.yaml",
        "zone-egress.yaml",
        "policies/mesh-traffic-permission.yaml",
        "policies/mesh-timeout.yaml",
    }
    args = [a for f in files for a in ("-f", str(f))]
    atoll.ok("apply", *args, *(a for v in DP_VARS for a in ("--var", v)))
    mesh = json.loads(atoll.ok("get", "mesh", "default", "-o", "json"))
    assert mesh["mtls"]["enabledBackend"] == "ca-1"
    dp = json.loads(atoll.ok("get", "dataplane", "web-1", "-m", "default", "-o", "json"))
    assert dp["networking"]["inbound"][0]["port"] == 18080
    assert atoll.names("zoneingresses") == ["ingress-1"]
    assert atoll.names("zoneegresses") == ["egress-1"]
    assert atoll.names("meshtrafficpermissions", "-m", "default") == ["allow-all"]
    assert "web-timeouts" in atoll.names("meshtimeouts", "-m", "default")
    assert "web-retries" in atoll.names("meshretries", "-m", "default")


@pytest.mark.parametrize(
    ("name", "proxy_type"),
    [("dataplane.yaml", "dataplane"), ("zone-ingress.yaml", "ingress"), ("zone-egress.yaml", "egress")],
)
def test_the_proxy_examples_load_as_atoll_dp_run_reads_them(name: str, proxy_type: str) -> None:
    resource = load_proxy_resource((EXAMPLES / name).read_text(), parse_vars(DP_VARS), None)
    assert proxy_type_of(resource) == proxy_type


def test_the_readmes_link_the_examples() -> None:
    assert (
        "(examples/)" in (REPO / "README.md").read_text() or "(examples/README.md)" in (REPO / "README.md").read_text()
    )
    listed = (EXAMPLES / "README.md").read_text()
    for path in EXAMPLES.rglob("*.yaml"):
        assert f"({path.relative_to(EXAMPLES).as_posix()})" in listed, path
