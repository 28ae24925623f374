"""``atoll demo`` (README's main job) starts, carries traffic to both backends, and cleans up."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.helpers import ATOLL

pytestmark = [pytest.mark.e2e]


def test_demo_runs_traffic_and_stops_cleanly() -> None:
    run = subprocess.run([*ATOLL, "demo", "--duration", "8"], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("traffic:")]
    assert lines, run.stdout
    last = lines[-1]
    assert "backend-1" in last and "backend-2" in last, run.stdout
    assert re.search(r"failed 0\b", last), last
    workdir = re.search(r"files in (\S+)", run.stdout)
    assert workdir is not None
    import os

    assert not os.path.exists(workdir.group(1)), "the demo must remove its files"
    assert "demo stopped" in run.stdout
