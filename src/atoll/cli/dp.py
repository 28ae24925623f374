"""`atoll dp ...`: the data plane agent commands.

``atoll dp run`` reads and validates the proxy's resource file (templated with ``--dataplane-var``)
before it contacts the CP, then hands an ``AgentConfig`` to ``atoll.dp.run_agent``. Exit codes:
0 after a clean stop (SIGTERM/SIGINT), 2 when the input is wrong (invalid file, unreplaced template
variable, the CP rejected the request), 1 for anything else (CP unreachable, Envoy missing, ...).
``atoll dp grpc-bootstrap`` writes the xDS bootstrap for a proxyless gRPC client;
``atoll dp install|uninstall transparent-proxy`` are in ``atoll.cli.transparent_proxy``.
Runnable on its own as ``python -m atoll.cli.dp``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import TextIO

import click

from atoll.cli import transparent_proxy
from atoll.dp import (
    PROXY_TYPES,
    AgentConfig,
    CpRejected,
    grpc_bootstrap,
    load_proxy_resource,
    parse_vars,
    proxy_type_of,
    run_agent,
)
from atoll.dp.failover import cp_urls
from atoll.errors import AtollError, InvalidInput
from atoll.resources.base import parse_duration

EXIT_FAILURE = 1
EXIT_INVALID = 2


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _fail(lines: list[str], code: int) -> None:
    for line in lines:
        click.echo(line, err=True)
    sys.exit(code)


def _invalid_lines(e: InvalidInput) -> list[str]:
    return [f"error: {e.title}"] + [f"  {fe}" for fe in e.errors]


@click.group(name="dp")
def dp() -> None:
    """Run a data plane proxy (Envoy sidecar, zone ingress or zone egress) managed by a zone CP."""


RUN_EPILOG = """\b
Examples:
  # a sidecar: the Dataplane's file, the token from `atoll token dataplane`
  atoll dp run --cp http://127.0.0.1:5681 --dataplane-file web-1.yaml --token-file web-1.token
  # a template filled from the command line
  atoll dp run --cp http://127.0.0.1:5681 --dataplane-file dp.yaml --dataplane-var name=web-2 \\
               --dataplane-var port=8081 --token-file web.token
  # a zone ingress (the file's type, ZoneIngress, says so; the token from `atoll token zone --scope ingress`)
  atoll dp run --cp http://127.0.0.1:5681 --dataplane-file ingress.yaml --token-file ingress.token
  # the CP serves ADS over TLS (bound to 0.0.0.0): trust its certificate
  atoll dp run --cp http://zone-1:5681 --dataplane-file web-1.yaml --token-file web-1.token \\
               --ca-file xds-tls.crt

\b
--cp is the zone CP's REST API (port 5681 by default), where the agent fetches its Envoy bootstrap;
Envoy then reaches ADS (5678) at the address the bootstrap names."""


@dp.command(name="run", epilog=RUN_EPILOG)
@click.option(
    "--cp",
    "cp_url",
    required=True,
    multiple=True,
    envvar="ATOLL_DP_CP",
    metavar="URL",
    help="The zone CP's REST API URL, e.g. http://127.0.0.1:5681 (not the ADS port 5678); several instances"
    " (HA): repeat it or give a comma-separated list.",
)
@click.option(
    "--dataplane-file",
    required=True,
    envvar="ATOLL_DP_DATAPLANE_FILE",
    type=click.File("r"),
    help="The proxy's resource (Universal YAML/JSON): a Dataplane, ZoneIngress or ZoneEgress; - reads stdin.",
)
@click.option(
    "--dataplane-var",
    "dataplane_vars",
    multiple=True,
    metavar="NAME=VALUE",
    help="Replace {{ NAME }} in the dataplane file with VALUE (repeatable).",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="ATOLL_DP_TOKEN_FILE",
    help="The proxy's token: `atoll token dataplane` for a Dataplane, `atoll token zone --scope ingress|egress`"
    " for a zone ingress or egress (not needed with the CP's --auth none).",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="ATOLL_DP_CA_FILE",
    help="PEM CA that verifies the CP's ADS certificate (ADS over TLS; e.g. the CP's <data_dir>/xds-tls.crt).",
)
@click.option(
    "--proxy-type",
    type=click.Choice(PROXY_TYPES),
    default=None,
    help="dataplane, ingress or egress (default: from the file's type: Dataplane, ZoneIngress or ZoneEgress).",
)
@click.option(
    "--xds",
    "xds_mode",
    type=click.Choice(("delta", "sotw")),
    default="delta",
    show_default=True,
    help="The xDS protocol variant Envoy speaks to the CP: incremental (delta) or state of the world.",
)
@click.option(
    "--admin-port",
    type=click.IntRange(1, 65535),
    envvar="ATOLL_DP_ADMIN_PORT",
    help="Envoy's admin port on loopback (default: networking.admin.port of the file, else a free port).",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ATOLL_DP_WORK_DIR",
    help="Directory for the Envoy bootstrap and other files (default: a temporary one, removed at exit).",
)
@click.option(
    "--ready-port",
    type=click.IntRange(1, 65535),
    envvar="ATOLL_DP_READY_PORT",
    help="Serve GET /ready on this port (200 once Envoy has its config and the inbounds are healthy).",
)
@click.option(
    "--ready-address",
    default="127.0.0.1",
    show_default=True,
    envvar="ATOLL_DP_READY_ADDRESS",
    help="Address the /ready endpoint listens on.",
)
@click.option(
    "--drain-time",
    default="5s",
    show_default=True,
    callback=_duration,
    help="How long Envoy drains connections on SIGTERM before it is stopped.",
)
@click.option(
    "--stop-timeout",
    default="5s",
    show_default=True,
    callback=_duration,
    help="How long Envoy may take to exit after SIGTERM before it is killed.",
)
@click.option(
    "--envoy-log-level",
    default="warning",
    show_default=True,
    help="Envoy's log level (trace, debug, info, warning, error, critical, off).",
)
@click.option(
    "--envoy-log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write Envoy's log to this file (default: the agent's stderr).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Envoy worker threads.",
)
@click.option(
    "--cp-timeout",
    default="60s",
    show_default=True,
    callback=_duration,
    help="How long to keep retrying an unreachable CP for the bootstrap before giving up.",
)
@click.option("--probe-all", is_flag=True, help="TCP-probe every inbound, not only those with serviceProbe.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def run(
    cp_url: tuple[str, ...],
    dataplane_file: TextIO,
    dataplane_vars: tuple[str, ...],
    token_file: Path | None,
    ca_file: Path | None,
    proxy_type: str | None,
    xds_mode: str,
    admin_port: int | None,
    work_dir: Path | None,
    ready_port: int | None,
    ready_address: str,
    drain_time: float,
    stop_timeout: float,
    envoy_log_level: str,
    envoy_log_file: Path | None,
    concurrency: int,
    cp_timeout: float,
    probe_all: bool,
    verbose: bool,
) -> None:
    """Fetch the Envoy bootstrap from the CP and run Envoy until SIGTERM/SIGINT."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s atoll-dp %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        text = dataplane_file.read()
        resource = load_proxy_resource(text, parse_vars(dataplane_vars), proxy_type)  # type: ignore[arg-type]
    except InvalidInput as e:
        _fail(_invalid_lines(e), EXIT_INVALID)
        return
    proxy_type = proxy_type or proxy_type_of(resource)
    token = token_file.read_text().strip() if token_file is not None else None
    try:
        urls = cp_urls(cp_url)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--cp") from None
    config = AgentConfig(
        cp_url=urls[0],
        cp_urls=tuple(urls),
        resource=resource,
        proxy_type=proxy_type,  # type: ignore[arg-type]
        token=token or None,
        xds_mode=xds_mode,
        admin_port=admin_port,
        work_dir=work_dir,
        ready_port=ready_port,
        ready_host=ready_address,
        drain_time=drain_time,
        stop_timeout=stop_timeout,
        envoy_log_level=envoy_log_level,
        envoy_log_file=envoy_log_file,
        concurrency=concurrency,
        cp_timeout=cp_timeout,
        probe_all=probe_all,
        ca_cert=ca_file.read_text() if ca_file is not None else None,
    )
    try:
        asyncio.run(run_agent(config, handle_signals=True))
    except CpRejected as e:
        _fail([f"error: {line}" if i == 0 else line for i, line in enumerate(e.lines())], EXIT_INVALID)
    except InvalidInput as e:
        _fail(_invalid_lines(e), EXIT_INVALID)
    except AtollError as e:
        _fail([f"error: {e}"], EXIT_FAILURE)
    except OSError as e:
        _fail([f"error: {e}"], EXIT_FAILURE)


@dp.command(name="grpc-bootstrap")
@click.option("--cp-xds", required=True, metavar="HOST:PORT", help="The zone CP's xDS address.")
@click.option("--mesh", required=True)
@click.option("--name", required=True, help="The Dataplane name of the gRPC client.")
@click.option("--cluster", default=None, help="node.cluster (default: the name).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default stdout).")
def grpc_bootstrap_cmd(cp_xds: str, mesh: str, name: str, cluster: str | None, output: Path | None) -> None:
    """Write a gRPC xDS bootstrap (GRPC_XDS_BOOTSTRAP) for a proxyless gRPC client."""
    host, sep, port = cp_xds.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise click.BadParameter(f'"{cp_xds}" is not HOST:PORT', param_hint="--cp-xds")
    doc = grpc_bootstrap(server_uri=cp_xds, mesh=mesh, name=name, cluster=cluster)
    text = json.dumps(doc, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)


dp.add_command(transparent_proxy.install)
dp.add_command(transparent_proxy.uninstall)

if __name__ == "__main__":
    dp(prog_name="atoll dp")
