"""``atoll demo`` (README's main job): a global CP, two zones with ingresses, mTLS sidecars; traffic from
zone-1's frontend splits about 1:2 between backend's zones, nothing fails, and everything is cleaned up."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.helpers import ATOLL

pytestmark = [pytest.mark.e2e]


def test_demo_runs_a_multizone_mesh_with_live_traffic_and_stops_cleanly() -> None:
    run = subprocess.run([*ATOLL, "demo", "--duration", "10"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for part in ("global CP", "zone-1 CP", "zone-2 CP", "zone-1 ingress", "zone-2 ingress", "sidecar frontend"):
        assert part in run.stdout, run.stdout
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("traffic:")]
    assert len(lines) >= 3, run.stdout
    last = lines[-1]
    m = re.search(r"zone-1\s+(\d+)%\s+zone-2\s+(\d+)%", last)
    assert m is not None, last
    local, remote = int(m.group(1)), int(m.group(2))
    assert 20 <= local <= 45 and 55 <= remote <= 80, f"want about 1:2, got {last}"
    assert re.search(r"failed 0\b", last), last
    assert "zone-1 egress" in run.stdout and "external service outside" in run.stdout, run.stdout
    assert "external outside 100% ok" in last, last
    workdir = re.search(r"files in (\S+)", run.stdout)
    assert workdir is not None and not os.path.exists(workdir.group(1)), "the demo must remove its files"
    assert "demo stopped" in run.stdout
