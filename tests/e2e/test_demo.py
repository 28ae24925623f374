"""``atoll demo`` (README's main job): a global CP, two zones with ingresses, mTLS sidecars; traffic from
zone-1's frontend splits about 1:2 between backend's zones, nothing fails, and everything is cleaned up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

import pytest

from tests.helpers import ATOLL, wait_until

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
    # zone-2's two instances share its traffic: the ingress balances connections, and the demo's
    # MeshTimeout makes each sidecar connection to backend last 1 s
    for instance in ("backend-2a", "backend-2b"):
        assert re.search(rf"{instance} [1-9]\d*%", last), f"{instance} got no traffic: {last}"
    assert "zone-1 egress" in run.stdout and "external service outside" in run.stdout, run.stdout
    assert "external outside 100% ok" in last, last
    workdir = re.search(r"files in (\S+)", run.stdout)
    assert workdir is not None and not os.path.exists(workdir.group(1)), "the demo must remove its files"
    assert "demo stopped" in run.stdout


def test_ctrl_c_says_the_demo_is_stopping_and_stops_within_seconds() -> None:
    proc = subprocess.Popen(
        [*ATOLL, "demo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: sum(ln.startswith("traffic:") for ln in lines) >= 2, timeout=240, what="demo traffic")
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        proc.wait(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    reader.join(10)
    out = "".join(lines)
    assert proc.returncode == 0, out[-3000:]
    assert "stopping the demo" in out and out.rstrip().endswith("demo stopped"), out[-2000:]
    assert took < 12, f"the demo took {took:.1f}s to stop after Ctrl-C"
    workdir = re.search(r"files in (\S+)", out)
    assert workdir is not None and not os.path.exists(workdir.group(1)), "the demo must remove its files"
