"""A real control plane process for the CLI tests, started with `atoll cp` (one per test module).

The CP's REST port comes from ``ATOLL_API_PORT`` while the other ports are flags: that checks that
`atoll cp` passes on only the flags given, so that the environment still counts.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import ATOLL, GiveUp, free_port, stop_process, wait_until


@dataclass(frozen=True)
class Cp:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def base_env(config_file: Path) -> dict[str, str]:
    """The environment of a CLI process: no inherited ATOLL_* settings, a private client config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")}
    env["ATOLL_CONFIG"] = str(config_file)
    env["COLUMNS"] = "200"
    return env


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cp]:
    tmp = tmp_path_factory.mktemp("cp")
    api, diag, xds = free_port(), free_port(), free_port()
    env = base_env(tmp / "client.yaml")
    env["ATOLL_API_PORT"] = str(api)
    log = tmp / "cp.log"
    argv = [*ATOLL, "cp", "--store", "memory", "--diagnostics-port", str(diag), "--xds-port", str(xds)]
    argv += ["--data-dir", str(tmp / "data")]
    with open(log, "wb") as out:
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:

        def ready() -> bool:
            if p.poll() is not None:
                raise GiveUp(f"atoll cp exited with {p.returncode}:\n{log.read_text()}")
            return httpx.get(f"http://127.0.0.1:{diag}/ready", timeout=1).status_code == 200

        wait_until(ready, timeout=30, what="atoll cp /ready")
        yield Cp(f"http://127.0.0.1:{api}", p, log)
    finally:
        stop_process(p)
