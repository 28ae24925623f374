"""``atoll inspect``: what the control plane knows about live proxies (and, at global, zones).

``inspect dataplanes`` lists a mesh's Dataplanes with their proxy's state at this CP: online or not,
xDS mode, when config was last ACKed, how many NACKs and the last NACK error, Envoy version.
``inspect dataplane NAME`` shows one in full; ``--xds`` prints the configuration the CP serves it, and
``--config-dump`` Envoy's own config dump, fetched through the CP (the proxy's agent relays it, so the
admin API never leaves the proxy's loopback).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from atoll.cli.common import state
from atoll.cli.render import age, make_console, now_utc, print_table, to_json, to_yaml

OUTPUT = click.Choice(["table", "yaml", "json"])


@click.group(
    epilog="""\b
Examples:
  atoll inspect dataplanes -m default
  atoll inspect dataplane web-1 --config-dump""",
)
def inspect() -> None:
    """Inspect live proxies and zones: online state, xDS ACK/NACK, served and applied config."""


def _mesh_path(mesh: str) -> str:
    return f"/meshes/{quote(mesh, safe='')}"


def _services(doc: dict[str, Any]) -> str:
    net = doc.get("networking") or {}
    names = [str((ib.get("tags") or {}).get("kuma.io/service", "")) for ib in net.get("inbound") or []]
    return ",".join(n for n in names if n)


def _last_ack(insight: dict[str, Any]) -> str:
    times = [t.get("lastAckedAt") for t in (insight.get("xds") or {}).values() if t.get("lastAckedAt")]
    return age(max(times), now_utc()) + " ago" if times else "-"


def dataplane_rows(items: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["NAME", "MESH", "ZONE", "STATUS", "SERVICES", "XDS", "LAST ACK", "NACKS", "LAST NACK", "ENVOY"]
    rows = []
    for d in sorted(items, key=lambda d: str(d.get("name"))):
        i = d.get("dataplaneInsight") or {}
        labels = d.get("labels") or {}
        rows.append(
            [
                str(labels.get("kuma.io/display-name", d.get("name", ""))),
                str(d.get("mesh", "")),
                str(labels.get("kuma.io/zone", "")),
                "Online" if i.get("online") else "Offline",
                _services(d),
                str(i.get("xdsMode") or "-"),
                _last_ack(i),
                str(i.get("nackCount", 0)),
                str(i.get("lastNackError") or "")[:80],
                str(i.get("envoyVersion") or ""),
            ]
        )
    return header, rows


@inspect.command(
    epilog="""\b
Example:
  atoll inspect dataplanes -m default -o yaml""",
)
@click.option("-m", "--mesh", default="default", show_default=True, help="Mesh of the Dataplanes.")
@click.option("-o", "--output", type=OUTPUT, default="table", show_default=True)
def dataplanes(mesh: str, output: str) -> None:
    """Dataplanes of a mesh with their proxies' state (online, xDS ACK/NACK, Envoy version)."""
    with state().client() as client:
        items = client.get_all(_mesh_path(mesh) + "/dataplanes+insights")
    if output == "json":
        click.echo(to_json(items))
    elif output == "yaml":
        click.echo(to_yaml(items), nl=False)
    else:
        header, rows = dataplane_rows(items)
        print_table(make_console(), header, rows)


@inspect.command(
    epilog="""\b
Examples:
  atoll inspect dataplane web-1
  atoll inspect dataplane web-1 --xds            # what the CP serves this proxy
  atoll inspect dataplane web-1 --config-dump    # what Envoy itself runs""",
)
@click.argument("name")
@click.option("-m", "--mesh", default="default", show_default=True)
@click.option("--xds", "what", flag_value="xds", help="Print the xDS configuration the CP serves to the proxy.")
@click.option("--config-dump", "what", flag_value="config-dump", help="Print Envoy's config dump (via the CP).")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def dataplane(name: str, mesh: str, what: str | None, output: str) -> None:
    """One Dataplane and its proxy's state; or its served xDS config, or Envoy's config dump."""
    base = _mesh_path(mesh) + "/dataplanes/" + quote(name, safe="")
    with state().client() as client:
        if what == "xds":
            body: Any = client.get_path(base + "/xds")
        elif what == "config-dump":
            body = client.get_path(base + "/config-dump")
        else:
            items = client.get_all(_mesh_path(mesh) + "/dataplanes+insights?name=" + quote(name, safe=""))
            matches = [i for i in items if i.get("name") == name]
            if not matches:
                raise click.ClickException(f"Dataplane {name} not found in mesh {mesh}")
            body = matches[0]
    click.echo(to_json(body) if output == "json" else to_yaml([body]), nl=output == "json")


@inspect.command(
    epilog="""\b
Example:
  atoll --cp http://global:5681 inspect zones""",
)
@click.option("-o", "--output", type=OUTPUT, default="table", show_default=True)
def zones(output: str) -> None:
    """Zones connected to this global control plane: online state, CP version, last sync, proxies."""
    with state().client() as client:
        items = client.get_all("/zones+insights")
    if output == "json":
        click.echo(to_json(items))
        return
    if output == "yaml":
        click.echo(to_yaml(items), nl=False)
        return
    now = now_utc()
    header = ["NAME", "STATUS", "ENABLED", "CP VERSION", "CONNECTED", "LAST SYNC DOWN", "LAST SYNC UP", "PROXIES"]
    rows = []
    for z in sorted(items, key=lambda z: str(z.get("name"))):
        i = z.get("zoneInsight") or {}
        sync = i.get("lastSync") or {}

        def ago(t: object) -> str:
            return age(t, now) + " ago" if t else "-"

        rows.append(
            [
                str(z.get("name", "")),
                "Online" if i.get("online") else "Offline",
                "yes" if z.get("enabled", True) is not False else "no",
                str(i.get("cpVersion") or "-"),
                ago(i.get("connectedSince")),
                ago(sync.get("globalToZone")),
                ago(sync.get("zoneToGlobal")),
                str(i.get("dataplanes", 0)),
            ]
        )
    print_table(make_console(), header, rows)
