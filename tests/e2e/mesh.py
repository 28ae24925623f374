"""Real processes for end-to-end tests: a control plane (``python -m atoll.cp``), data plane agents
(``python -m atoll.cli.dp run``, each running a real Envoy), and small HTTP/TCP backends.

Every process is started in its own session and stopped (group SIGTERM, then SIGKILL) by the
fixtures that own it, even when a test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections import Counter as Tally
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.helpers import GiveUp, free_port, http_get, stop_process, wait_until

DP = [sys.executable, "-m", "atoll.cli.dp"]


def http_json(method: str, url: str, body: object | None = None, timeout: float = 5.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class CpProcess:
    """A standalone/zone control plane on free ports."""

    def __init__(
        self,
        workdir: Path,
        *,
        store: str = "sqlite",
        env: Mapping[str, str] | None = None,
        name: str = "cp",
        prefix: Sequence[str] = (),
        host: str = "127.0.0.1",
    ) -> None:
        self.workdir = workdir
        self.name = name
        self.prefix = list(prefix)  # e.g. ["ip", "netns", "exec", NS]: run inside a network namespace
        self.host = host
        self.api_port = free_port()
        self.diag_port = free_port()
        self.xds_port = free_port()
        self.store = store
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{name}-{self.api_port}.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / f"{self.name}-data"

    def start(self) -> CpProcess:
        env = {
            **os.environ,
            "ATOLL_STORE": self.store,
            "ATOLL_DATA_DIR": str(self.data_dir),
            "ATOLL_API_PORT": str(self.api_port),
            "ATOLL_DIAGNOSTICS_PORT": str(self.diag_port),
            "ATOLL_XDS_PORT": str(self.xds_port),
            "ATOLL_DATAPLANE_GRACE": "1",
            "ATOLL_AUTH": "none",  # tests of tokens set ATOLL_AUTH=token
            **self.extra_env,
        }
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "atoll.cp"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_until(self.is_ready, timeout=20, what=f"control plane ready (log: {self.log_path})")
        return self

    def is_ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise GiveUp(f"control plane {self.name} exited {self.proc.returncode}: {self.log()}")
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.diag_port}/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def put(self, doc: Mapping[str, Any]) -> Any:
        if doc["type"] == "Mesh":
            path = f"/meshes/{doc['name']}"
        else:
            from atoll.resources import get_type

            path = f"/meshes/{doc['mesh']}/{get_type(doc['type']).plural}/{doc['name']}"
        status, body = http_json("PUT", self.url + path, doc)
        assert status in (200, 201), (status, body)
        return body

    def get(self, path: str) -> Any:
        status, body = http_json("GET", self.url + path)
        assert status == 200, (status, body)
        return body

    def post(self, path: str, body: object) -> Any:
        status, answer = http_json("POST", self.url + path, body)
        assert status == 200, (status, answer)
        return answer

    def dataplane_token(self, mesh: str, name: str, **extra: Any) -> str:
        return str(self.post("/tokens/dataplane", {"mesh": mesh, "name": name, **extra})["token"])

    def insight(self, mesh: str, name: str) -> dict[str, Any]:
        items = self.get(f"/meshes/{mesh}/dataplanes+insights")["items"]
        for it in items:
            if it["name"] == name:
                return dict(it["dataplaneInsight"])
        return {}


class Agent:
    """``atoll dp run`` for one Dataplane; waits for its ready line."""

    def __init__(
        self,
        cp: CpProcess,
        workdir: Path,
        dataplane: Mapping[str, Any],
        *,
        xds: str = "delta",
        proxy_type: str = "dataplane",
        token: str | None = None,
        prefix: Sequence[str] = (),
        extra_args: Sequence[str] = (),
    ) -> None:
        self.prefix = list(prefix)
        self.extra_args = list(extra_args)
        self.proxy_type = proxy_type
        self.token_file: Path | None = None
        if token is not None:
            self.token_file = workdir / f"token-{dataplane['name']}"
            self.token_file.write_text(token)
        self.cp = cp
        self.name = str(dataplane["name"])
        self.file = workdir / f"dp-{self.name}.json"
        self.file.write_text(json.dumps(dataplane))
        self.xds = xds
        self.admin_port = free_port()
        self.log_path = workdir / f"dp-{self.name}-{self.admin_port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True) -> Agent:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                *self.prefix,
                *DP,
                "run",
                "--cp",
                self.cp.url,
                "--dataplane-file",
                str(self.file),
                "--xds",
                self.xds,
                "--admin-port",
                str(self.admin_port),
                "--drain-time",
                "1s",
                "--proxy-type",
                self.proxy_type,
                *(["--token-file", str(self.token_file)] if self.token_file else []),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if wait:
            wait_until(self.is_ready, timeout=20, what=f"agent {self.name} ready (log: {self.log_path})")
        return self

    def is_ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise GiveUp(f"agent {self.name} exited {self.proc.returncode}: {self.log()}")
        return "atoll-dp ready" in self.log_path.read_text(errors="replace")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=2) as r:
            return str(r.read().decode())

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        stop_process(self.proc, timeout=15)
        rc = self.proc.returncode
        self.proc = None
        return rc


class Counter:
    """Thread-safe tally of response labels and failures from a load loop."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok: dict[str, int] = {}
        self.failed = 0

    def add(self, label: str | None) -> None:
        with self.lock:
            if label is None:
                self.failed += 1
            else:
                self.ok[label] = self.ok.get(label, 0) + 1


def call(port: int) -> str:
    """One GET on a fresh connection to 127.0.0.1:port: the body on 200, else ``status:N`` or ``error:Kind``."""
    try:
        status, body = http_get(port, timeout=3)
    except OSError as e:
        return f"error:{type(e).__name__}"
    return body if status == 200 else f"status:{status}"


class Load:
    """Requests in a loop on a background thread; every answer kept in order, mapped by ``label``
    (e.g. body -> zone). ``mark()``/``since(mark)`` count a window; ``errors()`` counts failures."""

    def __init__(self, port: int, label: Callable[[str], str] = lambda answer: answer) -> None:
        self.port = port
        self.label = label
        self.lock = threading.Lock()
        self.answers: list[str] = []
        self._failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = call(self.port)
            with self.lock:
                self.answers.append(self.label(answer))
                if answer.startswith(("error:", "status:")):
                    self._failed += 1

    def mark(self) -> int:
        with self.lock:
            return len(self.answers)

    def since(self, mark: int) -> Tally[str]:
        with self.lock:
            return Tally(self.answers[mark:])

    def total(self) -> int:
        return self.mark()

    def errors(self) -> int:
        with self.lock:
            return self._failed

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
