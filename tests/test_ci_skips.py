"""Under CI a skipped test or module fails (``tests/ci_skips.py``); elsewhere it still skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ci_skips import in_ci
from tests.helpers import REPO

PROBE = """
import pytest

def test_needs_a_server():
    pytest.skip(reason="PostgreSQL binaries not found")

@pytest.mark.skipif(True, reason="needs root")
def test_needs_root():
    pass

@pytest.mark.ci_may_skip
def test_may_skip():
    pytest.skip(reason="not a precondition")

def test_runs():
    pass
"""

MODULE_SKIP = """
import pytest
pytest.skip(reason="compatibility corpus not found", allow_module_level=True)
"""


def _run(tmp_path: Path, ci: str | None, source: str = PROBE) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(REPO)
    cmd = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "tests.ci_skips", "-p", "no:cacheprovider", str(tmp_path)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


def test_skips_stay_skips_outside_ci(tmp_path: Path) -> None:
    run = _run(tmp_path, None)
    assert run.returncode == 0, run.stdout
    assert "1 passed, 3 skipped" in run.stdout
    assert _run(tmp_path, None, MODULE_SKIP).returncode == 5  # nothing collected, nothing failed


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_a_missing_precondition_fails(tmp_path: Path, ci: str) -> None:
    run = _run(tmp_path, ci)
    assert run.returncode == 1, run.stdout
    out = run.stdout
    assert "1 failed, 1 passed, 1 skipped, 1 error" in out, out  # the skipif fails in setup: an error
    assert "a missing precondition fails instead of skipping: PostgreSQL binaries not found" in out
    assert "needs root" in out


def test_under_ci_a_skipped_module_fails_the_collection(tmp_path: Path) -> None:
    run = _run(tmp_path, "true", MODULE_SKIP)
    assert run.returncode == 2, run.stdout  # interrupted: an error during collection
    assert "a missing precondition fails instead of skipping: compatibility corpus not found" in run.stdout


def test_ci_values() -> None:
    assert in_ci({"CI": "true"}) and in_ci({"CI": "1"})
    assert not in_ci({}) and not in_ci({"CI": ""}) and not in_ci({"CI": "false"}) and not in_ci({"CI": "0"})
