"""The real kumactl 2.14.3 pointed at an Atoll control plane, for the conformance tests.

``Kumactl(workdir, url)`` adds the control plane with ``kumactl config control-planes add --name atoll
--address URL --skip-check`` into a config file in ``workdir`` (every call passes ``--config-file``,
and ``HOME`` is a directory in ``workdir``: the user's ``~/.kumactl`` is never read or written).
``ok(...)`` runs one command and answers its stdout, failing the test with both streams when it
exits non-zero; ``fails(...)`` expects a non-zero exit and answers stderr. ``yaml``/``json`` run a
command with ``-o yaml``/``-o json`` and parse the answer.

``require_kumactl()`` skips (only) when ``../shared/tools/kuma-2.14.3`` is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kuma_tools import MISSING, available, kuma_tool

TIMEOUT = 120  # seconds per command: generous, the machine is shared


def require_kumactl() -> Path:
    if not available():
        pytest.skip(reason=MISSING)
    return kuma_tool("kumactl")


class Kumactl:
    def __init__(self, workdir: Path, url: str) -> None:
        self.binary = require_kumactl()
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "kumactl.config.yaml"
        self.home = workdir / "home"
        self.home.mkdir(exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KUMA")}
        self.env["HOME"] = str(self.home)
        self.ok("config", "control-planes", "add", "--name", "atoll", "--address", url, "--skip-check")

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), "--config-file", str(self.config), *args]
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=self.env, timeout=TIMEOUT, check=False
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, f"kumactl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def fails(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode != 0, f"kumactl {' '.join(args)} succeeded:\n{done.stdout}"
        return done.stderr

    def yaml(self, *args: str) -> Any:
        return yaml.safe_load(self.ok(*args, "-o", "yaml"))

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json"))


def table(text: str) -> list[dict[str, str]]:
    """The rows of a kumactl table, by column header (columns split on runs of 2+ spaces in the
    header; a cell is the text under its header's start, up to the next header's start)."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 2 : i] == "  ")]
    names = [header[s:e].strip() for s, e in zip(starts, [*starts[1:], None], strict=True)]
    rows = []
    for line in lines[1:]:
        cells = [line[s:e].strip() if s < len(line) else "" for s, e in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(dict(zip(names, cells, strict=True)))
    return rows
