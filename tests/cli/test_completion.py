"""``atoll completion bash|zsh|fish``: the bash script, sourced in a real bash, completes commands,
resource types and (asking the control plane) resource names; zsh and fish get their scripts."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import Cp, base_env
from tests.cli.test_cli_e2e import Atoll, dataplane
from tests.helpers import ATOLL

pytestmark = pytest.mark.timeout(120)

BIN = Path(sys.executable).parent  # the venv's bin, where the `atoll` script is


def complete(words: list[str], tmp_path: Path) -> list[str]:
    """What bash completes for the last of ``words`` after ``source <(atoll completion bash)``."""
    env = base_env(tmp_path / "client.yaml")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    script = f"""
source <(atoll completion bash)
COMP_WORDS=({" ".join(shlex.quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
_atoll_completion atoll
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    return [line for line in p.stdout.splitlines() if line]


def test_commands_and_resource_types_complete(tmp_path: Path) -> None:
    assert set(complete(["atoll", "ins"], tmp_path)) == {"inspect"}
    assert "completion" in complete(["atoll", "comp"], tmp_path)
    assert set(complete(["atoll", "get", "meshtr"], tmp_path)) == {"meshtrafficpermission", "meshtrafficpermissions"}
    assert "zoneingresses" in complete(["atoll", "delete", "zone"], tmp_path)


def test_resource_names_come_from_the_control_plane(cp: Cp, tmp_path: Path) -> None:
    atoll = Atoll(cp.url, tmp_path)
    atoll.ok(
        "apply", "-f", "-", stdin="type: Mesh\nname: completion-mesh\n---\n" + dataplane("web-7", "completion-mesh")
    )
    assert complete(["atoll", "--cp", cp.url, "get", "meshes", "compl"], tmp_path) == ["completion-mesh"]
    words = ["atoll", "--cp", cp.url, "delete", "dataplane", "-m", "completion-mesh", ""]
    assert complete(words, tmp_path) == ["web-7"]
    hidden = subprocess.run(
        [*ATOLL, "--cp", cp.url, "complete-names", "dataplanes", "-m", "completion-mesh"],
        capture_output=True,
        text=True,
        env=base_env(tmp_path / "client.yaml"),
        timeout=60,
    )
    assert hidden.stdout == "web-7\n"
    # an unreachable CP completes nothing, silently
    assert complete(["atoll", "--cp", "http://127.0.0.1:9", "get", "meshes", ""], tmp_path) == []


@pytest.mark.parametrize(
    ("shell", "marker"), [("zsh", "#compdef atoll"), ("fish", "complete --no-files --command atoll")]
)
def test_zsh_and_fish_scripts(shell: str, marker: str, tmp_path: Path) -> None:
    p = subprocess.run([*ATOLL, "completion", shell], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and marker in p.stdout and "_ATOLL_COMPLETE" in p.stdout
