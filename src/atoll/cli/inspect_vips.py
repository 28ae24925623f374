"""``atoll inspect vips``: a mesh's service names and their VIPs, as the control plane asked serves them.

``inspect vips -m MESH`` lists a mesh's names (``<service>.mesh``, ExternalService hosts, VirtualOutbound
names) with their VIP, ports, service, tags and origin at a zone (or standalone) CP, then the retired
names that keep their VIP, the names without one and the problems (``GET /meshes/{mesh}/_vips``); at a
global CP, the hostname and VIP each zone synced, by zone. ``service_names`` is what ``inspect
dataplane NAME`` adds (``serviceNames``) for a Dataplane with ``transparentProxying``.
"""

from __future__ import annotations

from typing import Any

import click

from atoll.api import paths
from atoll.cli.client import Client, ErrorReply
from atoll.cli.common import state
from atoll.cli.render import make_console, print_table, to_json, to_yaml


def service_names(client: Client, mesh: str) -> list[str] | str:
    """The names a transparent-proxied proxy of ``mesh`` can call (``hostname vip:ports``)."""
    try:
        answer = client.get_path(paths.expand(paths.MESH_VIPS, mesh=mesh))
    except ErrorReply as e:
        return f"unknown here: {e}"
    return [f"{i['hostname']} {i['vip']}:{','.join(str(p) for p in i['ports'])}" for i in answer.get("items") or []]


def vip_rows(items: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["HOSTNAME", "VIP", "PORTS", "SERVICE", "TAGS", "ORIGIN"]
    rows = [
        [
            str(i.get("hostname", "")),
            str(i.get("vip", "")),
            ",".join(str(p) for p in i.get("ports") or []),
            str(i.get("service", "")),
            ",".join(f"{k}={v}" for k, v in sorted((i.get("tags") or {}).items())),
            str(i.get("origin", "")),
        ]
        for i in items
    ]
    return header, rows


@click.command(
    epilog="""\b
Examples:
  atoll inspect vips -m default
  atoll inspect vips -m default -o yaml   # with retired names, unallocated ones and problems

VIPs are allocated by each zone control plane (and a standalone one) for the names of its zone;
ask the zone's CP (--cp) for ports, services, tags and problems. A global control plane lists
the VIPs every zone synced to it, by zone (hostname and VIP only).""",
)
@click.option("-m", "--mesh", default="default", show_default=True, help="Mesh whose names to list.")
@click.option("-o", "--output", type=click.Choice(["table", "yaml", "json"]), default="table", show_default=True)
def vips(mesh: str, output: str) -> None:
    """A mesh's service names (<service>.mesh, ExternalService hosts, VirtualOutbound names) and their VIPs."""
    with state().client() as client:
        body = client.get_path(paths.expand(paths.MESH_VIPS, mesh=mesh))
    if output != "table":
        click.echo(to_json(body) if output == "json" else to_yaml([body]), nl=output == "json")
        return
    if "zones" in body:  # a global control plane: the VIPs each zone synced
        rows = [
            [str(z.get("zone", "")), str(i.get("hostname", "")), str(i.get("vip", "")), str(i.get("retired") or "")]
            for z in body["zones"]
            for i in z.get("items") or []
        ]
        print_table(make_console(), ["ZONE", "HOSTNAME", "VIP", "RETIRED"], rows)
        return
    header, rows = vip_rows(body.get("items") or [])
    print_table(make_console(), header, rows)
    for e in body.get("retired") or []:
        click.echo(f"retired: {e['hostname']} keeps {e['vip']} (unused since {e['retired']})")
    for h in body.get("unallocated") or []:
        click.echo(f"no VIP: {h}")
    for p in body.get("problems") or []:
        click.echo(f"problem: {p}")
