# ruff: noqa: ASYNC109, ASYNC230 - the coordinator may block briefly; measured work runs elsewhere
"""Shared pieces of the benchmarks: processes (CP, client workers, servers), /proc readings, results.

- ``ProcessGroup`` starts every child in its own session and stops them all (group SIGTERM, then
  SIGKILL) on exit, also when a benchmark fails half-way.
- ``cpu_seconds(pid)`` / ``rss_bytes(pid)`` / ``peak_rss_bytes(pid)`` read ``/proc/<pid>/stat|status``.
- ``Workers`` runs ``bench.adsclient`` processes (simulated proxies) and talks to them over pipes.
- ``write_results(name, data)`` writes ``bench/results/<name>-<timestamp>.json`` and merges the run into
  ``bench/results/latest.json`` under ``name``; ``table`` renders rows as aligned text.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
_next_port = 20000 + (os.getpid() % 300) * 40


def free_port() -> int:
    """A free TCP port on 127.0.0.1 below the ephemeral range (Envoy binds listeners there)."""
    global _next_port
    for _ in range(4000):
        _next_port = 20000 if _next_port >= 32000 else _next_port + 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", _next_port))
            except OSError:
                continue
            return _next_port
    raise RuntimeError("no free port")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (its threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def rss_bytes(pid: int) -> int:
    return _status(pid, "VmRSS")


def peak_rss_bytes(pid: int) -> int:
    return _status(pid, "VmHWM")


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": load(),
    }


def load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def write_results(name: str, data: Mapping[str, Any], results_dir: Path = RESULTS) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = results_dir / f"{name}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    latest_path = results_dir / "latest.json"
    try:
        latest = json.loads(latest_path.read_text())
    except (OSError, ValueError):
        latest = {}
    latest[name] = {**data, "file": path.name}
    latest_path.write_text(json.dumps(latest, indent=2, sort_keys=True) + "\n")
    return path


def wait_for(cond: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = cond()
        except Exception as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}: last={last!r}")
        time.sleep(interval)


def http(method: str, url: str, body: object | None = None, timeout: float = 30.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def mesh_timeout(mesh: str, default: Mapping[str, Any], name: str = "bench-timeout") -> dict[str, Any]:
    """A MeshTimeout targeting the whole mesh, to every destination, with ``default`` (the benchmarks'
    mesh-wide policy change: flip a value in ``default`` and measure until proxies have it)."""
    return {
        "type": "MeshTimeout",
        "mesh": mesh,
        "name": name,
        "spec": {"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": {"kind": "Mesh"}, "default": dict(default)}]},
    }


def zone_join_env(
    global_url: str, kds_port: int, kds_ca: Path, zone: str, token_file: Path, scope: Sequence[str] = ("cp", "ingress")
) -> dict[str, str]:
    """Have global (REST at ``global_url``) issue a zone token for ``zone`` (written to ``token_file``) and
    return the ``ATOLL_*`` variables of a zone CP that joins it over KDS/TLS (``kds_ca``: global's KDS
    certificate) — the deployment of ``tests/e2e/multizone.py``."""
    status, body = http("POST", global_url + "/tokens/zone", {"zone": zone, "scope": list(scope)})
    if status != 200:
        raise RuntimeError(f"POST /tokens/zone for {zone}: {status} {body}")
    token_file.write_text(body["token"])
    return {
        "ATOLL_MODE": "zone",
        "ATOLL_ZONE": zone,
        "ATOLL_GLOBAL_ADDRESS": f"grpcs://127.0.0.1:{kds_port}",
        "ATOLL_ZONE_TOKEN_FILE": str(token_file),
        "ATOLL_GLOBAL_CA_FILE": str(kds_ca),
    }


class ProcessGroup:
    """Children started in their own sessions; ``close()`` stops every one still running."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, log: str, **kw: Any
    ) -> subprocess.Popen[bytes]:
        with open(self.workdir / log, "ab") as out:
            p = subprocess.Popen(
                list(argv),
                env={**os.environ, **(env or {})},
                stdout=kw.pop("stdout", out),
                stderr=subprocess.STDOUT if kw.get("stdout") is None else out,
                start_new_session=True,
                cwd=ROOT,
                **kw,
            )
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        if p in self.procs:
            self.procs.remove(p)

    def close(self) -> None:
        for p in reversed(list(self.procs)):
            self.stop(p)


class ControlPlane:
    """A zone CP (``python -m atoll.cp``, memory store, no proxy auth) on free ports."""

    def __init__(self, group: ProcessGroup, *, coalesce: float, env: Mapping[str, str] | None = None) -> None:
        self.group = group
        self.api_port = free_port()
        self.diag_port = free_port()
        self.xds_port = free_port()
        self.env = {
            "ATOLL_STORE": "memory",
            "ATOLL_AUTH": "none",
            "ATOLL_DATA_DIR": str(group.workdir / "cp-data"),
            "ATOLL_API_PORT": str(self.api_port),
            "ATOLL_DIAGNOSTICS_PORT": str(self.diag_port),
            "ATOLL_XDS_PORT": str(self.xds_port),
            "ATOLL_XDS_COALESCE": str(coalesce),
            "ATOLL_LOG_LEVEL": "warning",
            "ATOLL_SKIP_DEFAULT_MESH": "true",  # each benchmark creates the meshes it measures
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> ControlPlane:
        self.proc = self.group.spawn([sys.executable, "-m", "atoll.cp"], env=self.env, log="cp.log")
        wait_for(self._ready, 30, "control plane /ready")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"control plane exited {self.proc.returncode}; see {self.group.workdir / 'cp.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.diag_port}/ready", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.group.stop(self.proc)
            self.proc = None

    def put(self, doc: Mapping[str, Any]) -> None:
        kind = doc["type"]
        if kind == "Mesh":
            path = f"/meshes/{doc['name']}"
        else:
            plural = {"Dataplane": "dataplanes", "MeshTimeout": "meshtimeouts"}[kind]
            path = f"/meshes/{doc['mesh']}/{plural}/{doc['name']}"
        status, body = http("PUT", self.url + path, doc)
        if status not in (200, 201):
            raise RuntimeError(f"PUT {path}: {status} {body}")


def _sum_codes(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in parts:
        for k, v in p.items():
            out[k] = out.get(k, 0) + v
    return out


class Workers:
    """``k`` ``bench.adsclient`` processes sharing ``nodes`` round-robin; commands go to all of them."""

    def __init__(self, group: ProcessGroup, target: str, mode: str, nodes: Sequence[str], k: int) -> None:
        self.group = group
        self.target = target
        self.mode = mode
        self.parts = [list(nodes[i::k]) for i in range(k) if nodes[i::k]]
        self.procs: list[asyncio.subprocess.Process] = []
        self.n = len(nodes)

    async def start(self) -> None:
        for i, nodes in enumerate(self.parts):
            with open(self.group.workdir / f"client-{i}.log", "ab") as err:
                p = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.adsclient",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=err,
                    cwd=ROOT,
                    start_new_session=True,
                    limit=256 * 1024 * 1024,
                )
            self.procs.append(p)
            assert p.stdin is not None
            config = {"target": self.target, "mode": self.mode, "nodes": nodes, "capture": i == 0}
            p.stdin.write((json.dumps(config) + "\n").encode())
        for p in self.procs:
            await self._read(p)

    async def _read(self, p: asyncio.subprocess.Process) -> Any:
        assert p.stdout is not None
        line = await p.stdout.readline()
        if not line:
            raise RuntimeError(f"client worker {p.pid} exited {await p.wait()}; see client-*.log")
        return json.loads(line)

    async def ask(self, cmd: str, only_first: bool = False) -> list[Any]:
        procs = self.procs[:1] if only_first else self.procs
        for p in procs:
            assert p.stdin is not None
            p.stdin.write((json.dumps({"cmd": cmd}) + "\n").encode())
        return [await self._read(p) for p in procs]

    async def status(self) -> dict[str, Any]:
        parts = await self.ask("status")
        return {
            "streams": sum(s["streams"] for s in parts),
            "ready": sum(s["ready"] for s in parts),
            "acked_since_mark": sum(s["acked_since_mark"] for s in parts),
            "acks": sum(s["acks"] for s in parts),
            "last_ack": max(s["last_ack"] for s in parts),
            "last_rx": max(s["last_rx"] for s in parts),
            "nacks": sum(s["nacks"] for s in parts),
            "errors": sum(s["errors"] for s in parts),
            "last_error": next((s["last_error"] for s in parts if s["last_error"]), ""),
            "first_error": next((s["first_error"] for s in parts if s["first_error"]), ""),
            "cpu": sum(s["cpu"] for s in parts),
            "codes": _sum_codes(s["codes"] for s in parts),
        }

    async def wait_ready(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = await self.status()
            if st["ready"] == self.n:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"{st['ready']}/{self.n} clients ready after {timeout}s: {st}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for p in self.procs:
            if p.returncode is None and p.stdin is not None:
                try:
                    p.stdin.write(b'{"cmd": "quit"}\n')
                    await p.stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    pass
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 10)
            except TimeoutError:
                os.killpg(p.pid, signal.SIGKILL)
                await p.wait()
        self.procs.clear()
