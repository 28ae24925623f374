"""``make demo`` installs only what the demo needs; ``make test`` (and ``.ci/run``) everything the tests
need. Checked with ``make -n`` against a virtualenv path that does not exist (so every install step
shows) and with ``scripts/system-deps.sh --list``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(target: str, tmp_path: Path) -> str:
    venv = tmp_path / "venv"
    p = subprocess.run(
        ["make", "-n", target, f"VENV={venv}"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    return p.stdout


def packages(role: str) -> list[str]:
    p = subprocess.run(
        ["bash", str(REPO / "scripts/system-deps.sh"), "--list", role], capture_output=True, text=True, check=True
    )
    return p.stdout.split()


def test_make_demo_installs_only_the_demos_needs(tmp_path: Path) -> None:
    out = dry_run("demo", tmp_path)
    assert "scripts/system-deps.sh demo" in out
    assert "pip install -q -e .\n" in out
    assert "[test]" not in out and "system-deps.sh test" not in out
    assert packages("demo") == ["python3.11", "python3.11-venv"]


def test_make_test_installs_everything_the_tests_need(tmp_path: Path) -> None:
    out = dry_run("test", tmp_path)
    assert "scripts/system-deps.sh test" in out
    assert "pip install -q -e '.[test]'" in out
    assert set(packages("test")) == {
        "python3.11",
        "python3.11-venv",
        "curl",
        "iproute2",
        "iptables",
        "nftables",
        "golang-go",
        "chromium",
        "postgresql",
    }
    assert (REPO / ".ci/run").read_text().strip().endswith("make test")
