"""README's "Using it" walk-through, run as written: the ``bash`` block of that section, with only the
ports the README says to choose changed to free ones, runs to the end (``bash -e``) — a global CP, a
zone CP, a service and its sidecar carrying a request through Envoy, ``inspect`` at both — so the README
cannot drift from what works. Every process the block starts is stopped, whatever happens."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO, free_port

pytestmark = pytest.mark.timeout(400)

PORTS = (5681, 5680, 5685, 15681, 15680, 15678, 8080, 18080)
"""The ports the README names and says to change if taken."""


def walkthrough() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert blocks, 'README\'s "Using it" has no bash block'
    return "\n".join(blocks)


def test_readme_names_every_port_it_says_to_choose() -> None:
    script = walkthrough()
    for port in PORTS:
        assert re.search(rf"\b{port}\b", script), port
    assert "examples/" in script


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    script = walkthrough()
    for port in PORTS:
        script = re.sub(rf"\b{port}\b", str(free_port()), script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")}
    env.update(TMPDIR=str(tmp_path), HOME=str(tmp_path), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the block left running
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in tmp_path.rglob("*.log"))
    assert proc.returncode == 0, f"the walk-through failed ({proc.returncode}):\n{out}\n{logs}"
    assert "KDS CA file (self-signed):" in out
    assert "allow-all" in out
    assert "zone-1" in out
    assert "HTTP 200 via Envoy" in out  # the request through the sidecar reached the app
    assert re.search(r"web-1\s+default\s+\S*\s*Online", out), out
    assert '"configs"' in out or "configs:" in out  # Envoy's config dump
