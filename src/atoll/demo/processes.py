"""Child processes of the demo (control planes, data plane agents), each logging to a file and
stopped as a process group, and free loopback ports below the ephemeral range."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_next_port = 21000


def free_port() -> int:
    """A free TCP port on 127.0.0.1 below 32768 (Envoy listeners collide with ephemeral ports)."""
    global _next_port
    while _next_port < 32000:
        _next_port += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", _next_port))
            except OSError:
                continue
            return _next_port
    raise RuntimeError("no free port below 32000")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Child:
    """A child process in its own session, logging to ``log``; ``stop``/``start`` again at will."""

    def __init__(self, name: str, argv: list[str], log: Path, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        self.argv = argv
        self.env = {**os.environ, **(env or {})}
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before {what}: see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: timed out waiting for {what}: see {self.log}")
            time.sleep(0.05)

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        self.wait_for(lambda: text in self.log.read_text(errors="replace"), timeout, repr(text))

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the child's session (no-op once it exited)."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 10.0) -> None:
        stop_all([self], timeout)


def stop_all(children: list[Child], timeout: float) -> None:
    """SIGTERM every child at once, wait for them together until ``timeout``, then SIGKILL the rest:
    stopping many takes as long as the slowest, not the sum."""
    for c in children:
        c.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for c in children:
        try:
            c.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.signal(signal.SIGKILL)
            c.proc.wait(5)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def put(api: str, path: str, doc: Mapping[str, Any]) -> None:
    req = urllib.request.Request(
        api + path, data=json.dumps(doc).encode(), method="PUT", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        if r.status not in (200, 201):
            raise RuntimeError(f"PUT {path}: HTTP {r.status}")


def post(api: str, path: str, doc: Mapping[str, Any]) -> Any:
    req = urllib.request.Request(
        api + path, data=json.dumps(doc).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())
