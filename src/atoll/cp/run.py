"""Run a control plane process: open the store, wire the components, serve until a signal.

``run_cp(config)`` is the blocking entry point (``atoll cp`` calls it): it sets up logging, runs
``serve_cp`` in a fresh event loop and returns the process exit code — 0 after a graceful stop on
SIGTERM/SIGINT, 1 when the store cannot be opened or a component fails (the reason is logged).

``serve_cp`` opens the store (``atoll.store.open_store``), wraps it to count operations, builds the
components with ``build_supervisor`` and runs them; the store is closed after every component has
stopped. ``build_supervisor`` is the explicit wiring — each part gets exactly what it uses:

    store, ADS TLS (``xds_credentials``) ──► XdsComponent "xds" (the parts that serve proxies, wired in
            ``atoll.cp.xds``: ADS on xds_host:xds_port; not on global)
    store, XdsComponent.api ──► REST API app (HttpServer "api", api_host:api_port; /bootstrap, /dp/health)
    admin token file, TLS files ──► ApiSecurity (AdminAuth for the API, HTTPS when configured)
    store ──► TokenIssuer ──► TokenEndpoints (POST /tokens/...)
    supervisor.ready, metrics, store ──► diagnostics app (HttpServer "diagnostics", diagnostics_port)
    global: store, zone token verifier, KDS TLS ──► GlobalKds ("kds", kds_host:kds_port); its inventory
            ──► REST API (/zones+insights, dataplanes+insights of every zone)
    zone with global_address: store, zone token file, XdsComponent.inventory ──► ZoneKds ("kds", dials
            global); the REST API becomes federated (global-owned types are read-only)
    every mode: the store's coordination ──► LeaderElector + InstanceRegistry (HaComponent "ha",
            ``atoll.cp.ha``); leader-only work wrapped in LeaderOnly: ZoneKds, CaAuthority,
            availableServices publishing; the registry ──► REST API (/control-planes) and the insights
            of proxies and zones other instances hold
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

import atoll
from atoll.api.app import ApiDependencies, ApiInfo, create_app
from atoll.api.diagnostics import create_diagnostics_app
from atoll.api.metrics import InstrumentedStore, Metrics
from atoll.cp import ha, store_checks
from atoll.cp.components import HttpServer, Supervisor
from atoll.cp.config import CpConfig
from atoll.cp.data_dir_lock import lock_data_dir
from atoll.cp.default_mesh import ensure_default_mesh
from atoll.cp.instances import InstanceRegistry
from atoll.cp.leader import LeaderElector, LeaderOnly
from atoll.cp.logs import setup_logging
from atoll.cp.xds import XdsComponent
from atoll.errors import AtollError
from atoll.gui import mount_gui
from atoll.gui.views import NamesSource
from atoll.kds import GlobalKds, ZoneKds, ensure_self_signed, server_credentials
from atoll.kds.flows import Insights
from atoll.security import (
    AdminAuth,
    TokenEndpoints,
    TokenIssuer,
    ensure_admin_token,
    ensure_tls_files,
    proxy_authenticator,
)
from atoll.security.authority import CaAuthority
from atoll.security.mesh_ca import CaManager
from atoll.store import open_store
from atoll.store.coordination import Coordination, InstanceRecord
from atoll.store.protocol import Store
from atoll.topology.service_names import NO_NAMES, ServiceNames
from atoll.xds.peers import PeerGate

log = logging.getLogger(__name__)


GC_THRESHOLDS = (50_000, 20, 10)
"""The cyclic collector's thresholds for a CP process. Config generation allocates hundreds of
thousands of short-lived objects per change (almost none in cycles: reference counting frees them);
at Python's default of 700 the young-generation collections alone took ~25 % of an endpoint change's
reconcile pass at 3,000 proxies (58 of ~230 ms), and ~0 with these."""


def run_cp(config: CpConfig) -> int:
    """Run the control plane until SIGTERM/SIGINT; return the exit code."""
    restore = setup_logging(config.log_format, config.log_level)
    gc.set_threshold(*GC_THRESHOLDS)
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
    """The store the configuration names (SQLite under ``data_dir``, memory, or PostgreSQL), checked
    and its contents logged (``atoll.cp.store_checks``); ``AtollError`` when it must not be used."""
    if config.store == "sqlite":
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AtollError(f"data_dir: cannot create {config.data_dir}: {e.strerror or e}") from None
        store_checks.check_before_open(config.store_path, allow_empty=config.allow_empty)
        store = await open_store("sqlite", path=config.store_path)
    elif config.store == "postgres":
        store = await open_store("postgres", dsn=config.store_dsn)
    else:
        return await open_store(config.store)
    try:
        await store_checks.check_after_open(store, _db_file(config), allow_empty=config.allow_empty)
    except BaseException:
        await store.close()
        raise
    return store


def _db_file(config: CpConfig) -> Path | None:
    """The SQLite database file, ``None`` for the other stores."""
    return config.store_path if config.store == "sqlite" else None


@dataclass(frozen=True, slots=True)
class ApiSecurity:
    """The REST API's admin check and, for HTTPS, its certificate and key files."""

    admin: AdminAuth
    tls_cert: Path | None = None
    tls_key: Path | None = None


def prepare_api_security(config: CpConfig) -> ApiSecurity:
    """Read or generate the admin token (and the self-signed TLS pair); ``AtollError`` if impossible."""
    token_file = config.admin_token_path
    admin = AdminAuth(ensure_admin_token(token_file), loopback_admin=config.loopback_admin, token_file=token_file)
    if config.tls_generate:
        cert, key = ensure_tls_files(config.data_dir, config.api_host)
        return ApiSecurity(admin, cert, key)
    return ApiSecurity(admin, config.tls_cert, config.tls_key)


def build_supervisor(
    config: CpConfig, store: Store, metrics: Metrics, *, api_security: ApiSecurity | None = None
) -> Supervisor:
    """The components of a control plane over ``store``, wired and ready to run."""
    security = api_security or prepare_api_security(config)
    supervisor = Supervisor(stop_timeout=config.shutdown_timeout)
    federated = config.mode == "zone" and config.global_address is not None
    info = ApiInfo(version=atoll.__version__, mode=config.mode, zone=config.zone, federated=federated)
    instance_id = ha.new_instance_id(config)
    coordination, registry_coordination = ha.coordinations_for(config)
    elector = LeaderElector(coordination, lease=ha.lease_name(config), holder=instance_id)
    xds = _build_xds(config, store, federated, instance_id, elector)
    if xds is not None:
        supervisor.add(xds)
    global_kds = build_global_kds(config, store) if config.mode == "global" else None
    registry = build_registry(config, registry_coordination, elector, instance_id, xds, global_kds)
    supervisor.add(ha.HaComponent((coordination, registry_coordination), elector, registry))
    shared_insights = ha.SharedGlobalInsights(global_kds.inventory, registry) if global_kds is not None else None
    if global_kds is not None:
        supervisor.add(global_kds)
        # zones use the CAs global creates, synced as Secrets; one global instance creates them
        supervisor.add(LeaderOnly("ca-authority", elector, lambda: CaAuthority(store)))
    if xds is not None:
        xds.reconciler.publisher.enabled = lambda: elector.is_leader
        # one VIP writer per shared store; alone on its store (SQLite, memory) a CP allocates from its first pass
        xds.reconciler.vips.enabled = (lambda: elector.is_leader) if config.store == "postgres" else (lambda: True)
        cas = CaManager(store) if not federated else None
        supervisor.add(LeaderOnly("available-services", elector, lambda: ha.PublishWhenElected(xds.reconciler, cas)))
    if federated and xds is not None:
        insights = ha.zone_insights(xds.inventory, registry)
        supervisor.add(LeaderOnly("kds", elector, lambda: build_zone_kds(config, store, insights, instance_id)))
    api_deps = ApiDependencies(
        store,
        info,
        proxies=xds.api if xds is not None else None,
        metrics=metrics,
        max_body_bytes=config.max_body_bytes,
        is_admin=security.admin,
        tokens=TokenEndpoints(TokenIssuer(store)),
        dataplane_insights=(
            global_kds.inventory.insight if global_kds is not None else ha.peer_dataplane_insight(registry)
        ),
        zone_insights=shared_insights.zone_insight if shared_insights is not None else None,
        control_planes=registry.listing,
        vips=xds.api.vips if xds is not None else None,
    )
    api_app = create_app(api_deps)
    inventory = xds.inventory if xds is not None else None
    gui_events = mount_gui(
        api_app,
        api_deps,
        revision=(lambda: inventory.revision) if inventory is not None else None,
        service_names=_names_source(xds) if xds is not None else None,
    )
    graceful = max(1.0, config.shutdown_timeout / 2)
    supervisor.add(
        HttpServer(
            "api",
            api_app,
            config.api_host,
            config.api_port,
            graceful_timeout=graceful,
            ssl_certfile=str(security.tls_cert) if security.tls_cert else None,
            ssl_keyfile=str(security.tls_key) if security.tls_key else None,
        )
    )
    supervisor.add(gui_events)  # after the API server: stopped first, so open event streams end at once
    diag_app = create_diagnostics_app(lambda: supervisor.ready, metrics, store, supervisor.not_ready_reasons)
    supervisor.add(
        HttpServer("diagnostics", diag_app, config.diagnostics_host, config.diagnostics_port, graceful_timeout=graceful)
    )
    return supervisor


def _build_xds(
    config: CpConfig, store: Store, federated: bool, instance_id: str, elector: LeaderElector
) -> XdsComponent | None:
    """The ADS side of a zone or standalone CP (``None`` for global)."""
    if config.mode not in ("standalone", "zone"):
        return None
    return XdsComponent(
        store,
        zone=config.zone or "default",
        xds_host=config.xds_host,
        xds_port=config.xds_port,
        xds_advertised_host=config.xds_advertised_host,
        grace=config.dataplane_grace,
        window=config.xds_coalesce,
        vip_cidr=config.vip_cidr,
        auth=proxy_authenticator(config.auth, store),
        ca_authority=not federated,
        credentials=xds_credentials(config),
        ads_cert_pem=_read_ads_cert(config),
        gate=PeerGate(first_message_timeout=config.xds_first_message_timeout),
        instance_id=instance_id,
        # alone on its store (SQLite, memory) a CP always creates CAs itself, from its first pass on
        leads=(lambda: elector.is_leader) if config.store == "postgres" else (lambda: True),
    )


def xds_credentials(config: CpConfig) -> grpc.ServerCredentials | None:
    """ADS TLS (``xds_tls``): the given pair or a self-signed one in the data dir; ``None`` for plaintext."""
    pair = xds_tls_pair(config)
    return server_credentials(*pair, option="xds_tls") if pair is not None else None


def xds_tls_pair(config: CpConfig) -> tuple[Path, Path] | None:
    """The (cert, key) files ADS serves TLS with: the given pair, else a self-signed one made in the
    data dir; ``None`` for plaintext ADS."""
    if not config.xds_tls_enabled:
        return None
    if config.xds_tls_cert is not None and config.xds_tls_key is not None:
        return config.xds_tls_cert, config.xds_tls_key
    hosts = ["localhost", socket.gethostname(), "127.0.0.1", "::1"]
    for host in (config.xds_host, config.xds_advertised_host):
        if host and host not in ("0.0.0.0", "::") and host not in hosts:
            hosts.append(host)
    return ensure_self_signed(config.data_dir, hosts, stem="xds-tls")


def _read_ads_cert(config: CpConfig) -> str | None:
    """The PEM ADS serves (kuma-dp's ``caCert`` is checked against it); ``None`` for plaintext ADS or
    when unreadable (``xds_credentials`` has said why already)."""
    pair = xds_tls_pair(config)
    try:
        return pair[0].read_text() if pair is not None else None
    except (OSError, UnicodeDecodeError):
        return None


def build_global_kds(config: CpConfig, store: Store) -> GlobalKds:
    """Global's KDS server: TLS from kds_tls_cert/key or a self-signed pair in the data dir; zones
    authenticate with zone tokens (scope ``cp``) checked by ``atoll.security``."""
    verifier = proxy_authenticator(config.auth, store)

    async def authenticate(zone: str, token: str) -> None:
        await verifier.verify_zone(token, zone, "cp")

    if config.kds_tls_cert is not None and config.kds_tls_key is not None:
        cert, key = config.kds_tls_cert, config.kds_tls_key
        log.info("KDS serves TLS with %s; zones trust it with --global-ca-file <the CA that signed it>", cert)
    else:
        cert, key = ensure_self_signed(config.data_dir)
        log.info("KDS CA file (self-signed): %s; zones trust it with --global-ca-file %s", cert, cert)
    return GlobalKds(
        store,
        authenticate,
        host=config.kds_host,
        port=config.kds_port,
        credentials=server_credentials(cert, key),
        stop_grace=max(0.5, config.shutdown_timeout / 2),
    )


def build_zone_kds(config: CpConfig, store: Store, insights: Insights, instance_id: str | None = None) -> ZoneKds:
    """A federated zone's KDS client; the token file is re-read on every connect. It sends global the
    ``insights`` of this zone's dataplanes (not of its zone ingresses and egresses)."""
    assert config.zone is not None and config.global_address is not None and config.zone_token_file is not None
    token_file = config.zone_token_file
    return ZoneKds(
        store,
        zone=config.zone,
        global_address=config.global_address,
        token=lambda: token_file.read_text(encoding="utf-8"),
        ca_file=config.global_ca_file,
        insights=insights,
        version=atoll.__version__,
        instance_id=instance_id,
    )


def build_registry(
    config: CpConfig,
    coordination: Coordination,
    elector: LeaderElector,
    instance_id: str,
    xds: XdsComponent | None,
    global_kds: GlobalKds | None,
) -> InstanceRegistry:
    """This instance in the store's registry: reporting its proxies (zone) or zones (global); a zone
    leader gives a dead instance's proxies the removal grace."""
    report: Callable[[], Mapping[str, Any]] = lambda: {}  # noqa: E731
    on_dead = None
    if xds is not None:
        report = ha.zone_report(xds.inventory)
        removal = xds.removal

        async def on_dead(dead: InstanceRecord) -> None:
            held = dead.report.get("proxies")
            for nid in held if isinstance(held, dict) else ():
                removal.schedule(str(nid))

    elif global_kds is not None:
        report = ha.global_report(global_kds.registry)
    registry = InstanceRegistry(
        coordination,
        elector,
        role=ha.lease_name(config),
        instance_id=instance_id,
        base=ha.base_report(config, atoll.__version__),
        report=report,
        on_dead=on_dead,
    )
    if xds is not None:
        xds.removal.connected_elsewhere = registry.holds_proxy
    return registry


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
        data_dir_lock = lock_data_dir(config.data_dir)
    except AtollError as e:
        log.error("cannot use the data dir: %s", e)
        return 1
    try:
        return await _serve_locked(config)
    finally:
        data_dir_lock.release()


async def _serve_locked(config: CpConfig) -> int:
    """``serve_cp`` once this process holds the data dir (``atoll.cp.data_dir_lock``)."""
    try:
        api_security = prepare_api_security(config)
    except AtollError as e:
        log.error("cannot set up API security: %s", e)
        return 1
    log.info(
        "REST API admin token in %s; serving %s",
        config.admin_token_path,
        "HTTPS" if api_security.tls_cert else "plain HTTP",
    )
    try:
        raw_store = await open_configured_store(config)
    except (AtollError, OSError) as e:
        log.error("cannot open the %s store: %s", config.store, e)
        return 1
    if config.mode != "zone" or config.global_address is None:
        if config.skip_default_mesh:
            log.info("not creating mesh default (skip_default_mesh)")
        else:
            try:
                await ensure_default_mesh(raw_store)
            except AtollError as e:
                log.error("cannot create mesh default: %s", e)
                await raw_store.close()
                return 1
    metrics = Metrics()
    store = InstrumentedStore(raw_store, metrics)
    supervisor = build_supervisor(config, store, metrics, api_security=api_security)
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
            await store_checks.record_clean_stop(raw_store, _db_file(config))
            await raw_store.close()
        except Exception:
            log.exception("error while closing the store")
    log.info("control plane stopped: %s", outcome.reason, extra={"exit_code": outcome.exit_code})
    return outcome.exit_code


def _names_source(xds: XdsComponent) -> NamesSource:
    """The GUI's view of the names this CP allocates: its reconciler's table of a mesh (only this
    zone's proxies are served by it, so every zone the page asks about gets the local table)."""

    async def names(mesh: str, zone: str) -> ServiceNames:
        report = xds.reconciler.names_report(mesh)
        return report.names if report is not None else NO_NAMES

    return names
