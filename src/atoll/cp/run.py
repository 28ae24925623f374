"""Run a control plane process: open the store, wire the components, serve until a signal.

``run_cp(config)`` is the blocking entry point (``atoll cp`` calls it): it sets up logging, runs
``serve_cp`` in a fresh event loop and returns the process exit code — 0 after a graceful stop on
SIGTERM/SIGINT, 1 when the store cannot be opened or a component fails (the reason is logged).

``serve_cp`` opens the store (``atoll.store.open_store``), wraps it to count operations, builds the
components with ``build_supervisor`` and runs them; the store is closed after every component has
stopped. ``build_supervisor`` is the explicit wiring — each part gets exactly what it uses:

    store ──► ProxyService (XdsComponent "xds": ADS on xds_host:xds_port; not on global)
    store, ProxyService ──► REST API app (HttpServer "api", api_host:api_port; /bootstrap, /dp/health)
    supervisor.ready, metrics, store ──► diagnostics app (HttpServer "diagnostics", diagnostics_port)
"""

from __future__ import annotations

import asyncio
import logging
import signal

import atoll
from atoll.api.app import ApiInfo, create_app
from atoll.api.diagnostics import create_diagnostics_app
from atoll.api.metrics import InstrumentedStore, Metrics
from atoll.cp.components import HttpServer, Supervisor
from atoll.cp.config import CpConfig
from atoll.cp.logs import setup_logging
from atoll.cp.xds import XdsComponent
from atoll.errors import AtollError
from atoll.proxies.service import ProxyService
from atoll.store import open_store
from atoll.store.protocol import Store

log = logging.getLogger(__name__)


def run_cp(config: CpConfig) -> int:
    """Run the control plane until SIGTERM/SIGINT; return the exit code."""
    restore = setup_logging(config.log_format, config.log_level)
    try:
        return asyncio.run(serve_cp(config))
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        log.warning("interrupted during shutdown")
        return 130
    except Exception:
        log.exception("control plane crashed")
        return 1
    finally:
        restore()


async def open_configured_store(config: CpConfig) -> Store:
    """The store the configuration names (SQLite under ``data_dir``, memory, or PostgreSQL)."""
    if config.store == "sqlite":
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AtollError(f"data_dir: cannot create {config.data_dir}: {e.strerror or e}") from None
        return await open_store("sqlite", path=config.store_path)
    if config.store == "postgres":
        return await open_store("postgres", dsn=config.store_dsn)
    return await open_store(config.store)


def build_supervisor(config: CpConfig, store: Store, metrics: Metrics) -> Supervisor:
    """The components of a control plane over ``store``, wired and ready to run."""
    supervisor = Supervisor(stop_timeout=config.shutdown_timeout)
    info = ApiInfo(version=atoll.__version__, mode=config.mode, zone=config.zone)
    proxies: ProxyService | None = None
    if config.mode in ("standalone", "zone"):
        proxies = ProxyService(
            store,
            zone=config.zone or "default",
            xds_host=config.xds_host,
            xds_port=config.xds_port,
            xds_advertised_host=config.xds_advertised_host,
            grace=config.dataplane_grace,
            window=config.xds_coalesce,
        )
        supervisor.add(XdsComponent(proxies))
    api_app = create_app(store, info, proxies=proxies, metrics=metrics, max_body_bytes=config.max_body_bytes)
    graceful = max(1.0, config.shutdown_timeout / 2)
    supervisor.add(HttpServer("api", api_app, config.api_host, config.api_port, graceful_timeout=graceful))
    diag_app = create_diagnostics_app(lambda: supervisor.ready, metrics, store)
    supervisor.add(
        HttpServer("diagnostics", diag_app, config.diagnostics_host, config.diagnostics_port, graceful_timeout=graceful)
    )
    return supervisor


async def serve_cp(config: CpConfig) -> int:
    """Open the store, run every component until a signal or a failure, close the store."""
    log.info(
        "starting Atoll control plane",
        extra={
            "mode": config.mode,
            "zone": config.zone or "",
            "store": config.store,
            "data_dir": str(config.data_dir),
            "api": f"{config.api_host}:{config.api_port}",
            "diagnostics": f"{config.diagnostics_host}:{config.diagnostics_port}",
        },
    )
    try:
        raw_store = await open_configured_store(config)
    except (AtollError, OSError) as e:
        log.error("cannot open the %s store: %s", config.store, e)
        return 1
    metrics = Metrics()
    store = InstrumentedStore(raw_store, metrics)
    supervisor = build_supervisor(config, store, metrics)
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, supervisor.request_stop, f"received {sig.name}")
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    try:
        outcome = await supervisor.run()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        try:
            await raw_store.close()
        except Exception:
            log.exception("error while closing the store")
    log.info("control plane stopped: %s", outcome.reason, extra={"exit_code": outcome.exit_code})
    return outcome.exit_code
