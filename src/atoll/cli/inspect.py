"""``atoll inspect``: what the control plane knows about live proxies (and, at global, zones), and its HA instances.

``inspect dataplanes`` lists a mesh's Dataplanes with their proxy's state at this CP: online or not,
xDS mode, when config was last ACKed, how many NACKs and the last NACK error, Envoy version.
``inspect dataplane NAME`` shows one in full; ``--xds`` prints the configuration the CP serves it, and
``--config-dump`` Envoy's own config dump, fetched through the CP (the proxy's agent relays it, so the
admin API never leaves the proxy's loopback), and ``--stats`` Envoy's counters the same way (non-zero
ones, optionally only those containing ``--filter``: ``ssl.fail_verify_error`` shows a wrong CA).
``inspect zoneegresses`` lists a zone's egresses (online, address, what they route), ``inspect
zoneegress NAME`` shows one with every SNI it passes through (and to which zones, with weights) and
every external service it terminates and originates for, with the permissions checked there.
``inspect dataplane NAME --policies`` shows, per inbound and outbound, the policy items that apply in
merge order and the settings they give (as text, or the API's answer as YAML/JSON); ``inspect
policy KIND NAME`` the Dataplanes a policy selects. Both are answered by any CP from its store
(``atoll.api.policy_routes``). ``inspect control-planes`` lists the CP instances sharing this one's store
(HA): which leads, versions, uptimes, heartbeats, proxies and zones each holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import click

from atoll.api import paths
from atoll.cli.client import Client
from atoll.cli.common import state
from atoll.cli.inspect_vips import service_names, vips
from atoll.cli.render import age, lookup_type, make_console, now_utc, print_table, to_json, to_yaml

Table = tuple[list[str], list[list[str]]]
OUTPUT = click.Choice(["table", "yaml", "json"])
PROXY_VIEWS = {"xds": paths.DATAPLANE_SERVED_XDS, "config-dump": paths.DATAPLANE_XDS, "stats": paths.DATAPLANE_STATS}


@click.group(
    epilog="""\b
Examples:
  atoll inspect dataplanes -m default
  atoll inspect dataplane web-1 --config-dump""",
)
def inspect() -> None:
    """Inspect live proxies and zones: online state, xDS ACK/NACK, served and applied config."""


inspect.add_command(vips)  # a mesh's service names and VIPs: atoll.cli.inspect_vips


def _emit(items: list[dict[str, Any]], output: str, rows: Callable[[list[dict[str, Any]]], Table]) -> None:
    """A listing as JSON, YAML, or the table ``rows`` makes of it."""
    if output == "json":
        click.echo(to_json(items))
    elif output == "yaml":
        click.echo(to_yaml(items), nl=False)
    else:
        header, body = rows(items)
        print_table(make_console(), header, body)


def _named(client: Client, path: str, name: str) -> dict[str, Any] | None:
    """The item of the ``+insights`` list at ``path`` named exactly ``name``, if any."""
    items = client.get_all(path + "?name=" + quote(name, safe=""))
    return next((i for i in items if i.get("name") == name), None)


def resolve_dataplane(client: Client, mesh: str, name: str) -> dict[str, Any]:
    """The Dataplane (with its insight) that ``name`` means: the one stored under that name, else the
    one whose ``kuma.io/display-name`` it is (a global CP stores a zone's ``web-1`` as
    ``web-1-<hash>``, ``atoll.kds.names``). ``ClickException`` when none, or several, listing those."""
    items = client.get_all(paths.expand(paths.DATAPLANES_INSIGHTS, mesh=mesh) + "?name=" + quote(name, safe=""))
    exact = next((i for i in items if i.get("name") == name), None)
    if exact is not None:
        return exact
    matches = [i for i in items if (i.get("labels") or {}).get("kuma.io/display-name") == name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise click.ClickException(f"Dataplane {name} not found in mesh {mesh}")
    listed = ", ".join(
        f"{i.get('name')} (zone {(i.get('labels') or {}).get('kuma.io/zone', '?')})"
        for i in sorted(matches, key=lambda i: str(i.get("name")))
    )
    raise click.ClickException(
        f"{len(matches)} Dataplanes in mesh {mesh} are named {name}: {listed}; give one of those"
    )


def _echo_one(body: Any, output: str) -> None:
    click.echo(to_json(body) if output == "json" else to_yaml([body]), nl=output == "json")


def _services(doc: dict[str, Any]) -> str:
    net = doc.get("networking") or {}
    names = [str((ib.get("tags") or {}).get("kuma.io/service", "")) for ib in net.get("inbound") or []]
    return ",".join(n for n in names if n)


def _last_ack(insight: dict[str, Any]) -> str:
    times = [t.get("lastAckedAt") for t in (insight.get("xds") or {}).values() if t.get("lastAckedAt")]
    return age(max(times), now_utc()) + " ago" if times else "-"


def dataplane_rows(items: list[dict[str, Any]]) -> Table:
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
        items = client.get_all(paths.expand(paths.DATAPLANES_INSIGHTS, mesh=mesh))
    _emit(items, output, dataplane_rows)


@inspect.command(
    epilog="""\b
Examples:
  atoll inspect dataplane web-1
  atoll inspect dataplane web-1 --policies       # which policies shape its traffic, and how
  atoll inspect dataplane web-1 --xds            # what the CP serves this proxy
  atoll inspect dataplane web-1 --config-dump    # what Envoy itself runs""",
)
@click.argument("name")
@click.option("-m", "--mesh", default="default", show_default=True)
@click.option("--xds", "what", flag_value="xds", help="Print the xDS configuration the CP serves to the proxy.")
@click.option("--config-dump", "what", flag_value="config-dump", help="Print Envoy's config dump (via the CP).")
@click.option("--stats", "what", flag_value="stats", help="Print Envoy's non-zero counters and gauges (via the CP).")
@click.option(
    "--policies",
    "what",
    flag_value="policies",
    help="Print, per inbound and outbound, the policies that apply in merge order and the settings they give.",
)
@click.option("--filter", "stat_filter", default="", help="With --stats: only stats whose name contains this.")
@click.option(
    "-o", "--output", type=click.Choice(["yaml", "json", "text"]), help="Default: text with --policies, else yaml."
)
def dataplane(name: str, mesh: str, what: str | None, stat_filter: str, output: str | None) -> None:
    """One Dataplane and its proxy's state; its served xDS config, Envoy's config dump or stats; or
    the policies shaping its traffic. At a global CP, NAME may be the name the zone knows (its display
    name) when only one zone has a Dataplane of that name."""
    if what == "policies":
        with state().client() as client:
            name = str(resolve_dataplane(client, mesh, name).get("name"))
            body = client.get_path(paths.expand(paths.DATAPLANE_POLICIES, mesh=mesh, name=name))
        if output in (None, "text"):
            click.echo("\n".join(policy_lines(body)))
        else:
            _echo_one(body, output)
        return
    output = "yaml" if output in (None, "text") else output
    with state().client() as client:
        found = resolve_dataplane(client, mesh, name)
        body = found
        if what is not None:
            body = client.get_path(paths.expand(PROXY_VIEWS[what], mesh=mesh, name=str(found.get("name"))))
            if what == "stats":
                body = _nonzero_stats(body, stat_filter)
        elif (body.get("networking") or {}).get("transparentProxying") is not None:
            body["serviceNames"] = service_names(client, mesh)
    _echo_one(body, output)


@inspect.command(
    epilog="""\b
Example:
  atoll inspect zones        # against the global control plane""",
)
@click.option("-o", "--output", type=OUTPUT, default="table", show_default=True)
def zones(output: str) -> None:
    """Zones connected to this global control plane: online state, CP version, last sync, proxies."""
    with state().client() as client:
        items = client.get_all(paths.ZONES_INSIGHTS)
    _emit(items, output, zone_rows)


def zone_rows(items: list[dict[str, Any]]) -> Table:
    now = now_utc()

    def ago(t: object) -> str:
        return age(t, now) + " ago" if t else "-"

    header = ["NAME", "STATUS", "ENABLED", "CP VERSION", "CONNECTED", "LAST SYNC DOWN", "LAST SYNC UP", "PROXIES"]
    rows = []
    for z in sorted(items, key=lambda z: str(z.get("name"))):
        i = z.get("zoneInsight") or {}
        sync = i.get("lastSync") or {}
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
    return header, rows


def _nonzero_stats(doc: Any, contains: str) -> dict[str, Any]:
    """Envoy's ``/stats?format=json`` as ``{name: value}``: plain values only, zeros left out."""
    out: dict[str, Any] = {}
    for item in (doc or {}).get("stats") or ():
        value = item.get("value")
        name = str(item.get("name", ""))
        if isinstance(value, int | float) and value and contains in name:
            out[name] = value
    return dict(sorted(out.items()))


def egress_rows(items: list[dict[str, Any]]) -> Table:
    header = ["NAME", "ZONE", "STATUS", "ADDRESS", "PASS-THROUGH", "EXTERNAL SERVICES", "LAST ACK", "NACKS"]
    rows = []
    for e in sorted(items, key=lambda e: str(e.get("name"))):
        i = e.get("zoneEgressInsight") or {}
        net = e.get("networking") or {}
        externals = [f"{x.get('mesh')}/{x.get('service')}" for x in i.get("externalServices") or ()]
        rows.append(
            [
                str(e.get("name", "")),
                str(e.get("zone") or ""),
                "Online" if i.get("online") else "Offline",
                f"{net.get('address', '')}:{net.get('port', '')}",
                str(len(i.get("passThrough") or ())),
                ",".join(externals) or "-",
                _last_ack(i),
                str(i.get("nackCount", 0)),
            ]
        )
    return header, rows


@inspect.command(
    epilog="""\b
Example:
  atoll inspect zoneegresses            # at a zone CP""",
)
@click.option("-o", "--output", type=OUTPUT, default="table", show_default=True)
def zoneegresses(output: str) -> None:
    """Zone egresses of this zone: online state, address, how many SNIs they pass through, external services."""
    with state().client() as client:
        items = client.get_all(paths.ZONE_EGRESSES_INSIGHTS)
    _emit(items, output, egress_rows)


@inspect.command(
    epilog="""\b
Example:
  atoll inspect zoneegress egress-1      # every SNI it routes, and where to""",
)
@click.argument("name")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def zoneegress(name: str, output: str) -> None:
    """One zone egress: its proxy's state, the remote services it passes through, the external services it serves."""
    with state().client() as client:
        body = _named(client, paths.ZONE_EGRESSES_INSIGHTS, name)
    if body is None:
        raise click.ClickException(f"ZoneEgress {name} not found")
    _echo_one(body, output)


# --- policies ---------------------------------------------------------------------------------------


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def _pruned(value: Any) -> Any:
    """Settings without their empty lists and objects (a caller ``source`` of ``{}`` stays: it means
    every caller)."""
    if isinstance(value, dict):
        kept = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if k == "source" or v not in ([], {})}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _ref(ref: dict[str, Any] | None) -> str:
    if not ref:
        return "rules"
    extra = [str(ref[k]) for k in ("name", "sectionName") if ref.get(k)]
    extra += [f"{k}={v}" for k, v in (ref.get("tags") or ref.get("labels") or {}).items()]
    return " ".join([str(ref.get("kind", "")), *extra])


def policy_lines(body: dict[str, Any]) -> list[str]:
    """``inspect dataplane --policies`` as text: per inbound and outbound, per kind, the contributing
    policy items in merge order (a later one wins field by field; for MeshTrafficPermission a caller
    gets the last permission it matches) and the resulting settings (``=>``); then, per MeshHTTPRoute
    that policies target, the same for that route's rules."""
    names = [f"{p.get('type')}/{p.get('name')}" for p in body.get("policies") or ()]
    lines = [f"Dataplane {body.get('dataplane')} (mesh {body.get('mesh')}): {len(names)} policies select it"]
    lines += [f"  {n}" for n in names]
    for traffic in [*(body.get("inbounds") or ()), *(body.get("outbounds") or ())]:
        where = f"{traffic.get('address')}:{traffic.get('port')}"
        lines += ["", f"{traffic.get('direction')} {traffic.get('service')} ({where})"]
        kinds = traffic.get("kinds") or ()
        if not kinds:
            lines.append("  no policy applies")
        lines += _kind_lines(kinds, "  ")
        for route in traffic.get("routes") or ():
            lines.append(f"  on the rules of MeshHTTPRoute {route.get('route')}:")
            lines += _kind_lines(route.get("kinds") or (), "    ")
    return lines


def _kind_lines(kinds: Iterable[dict[str, Any]], indent: str) -> list[str]:
    lines = []
    for k in kinds:
        note = "" if k.get("enforced") else "  [stored, not enforced]"
        count = len(k.get("contributions") or ())
        lines.append(f"{indent}{k.get('kind')}: {count} item{'s' if count != 1 else ''}, in merge order{note}")
        for i, c in enumerate(k.get("contributions") or (), 1):
            conf = c.get("rules") if c.get("rules") else c.get("default")
            item = f"{c.get('policy')}  {c.get('section')} {_ref(c.get('targetRef'))}"
            lines.append(f"{indent}  {i}. {item}: {_compact(conf)}")
        if k.get("settings") is not None:
            lines.append(f"{indent}  => {_compact(_pruned(k.get('settings')))}")
    return lines


def reach_rows(items: list[dict[str, Any]]) -> Table:
    header = ["DATAPLANE", "ZONE", "INBOUNDS", "OUTBOUNDS"]
    rows = [
        [
            str(d.get("dataplane", "")),
            str(d.get("zone") or "-"),
            ",".join(d.get("inbounds") or ()) or "-",
            ",".join(d.get("outbounds") or ()) or "-",
        ]
        for d in items
    ]
    return header, rows


@inspect.command(
    epilog="""\b
Examples:
  atoll inspect policy meshtimeout timeout-all -m default
  atoll inspect policy MeshRetry retry-backend -o yaml""",
)
@click.argument("kind")
@click.argument("name")
@click.option("-m", "--mesh", default="default", show_default=True)
@click.option("-o", "--output", type=OUTPUT, default="table", show_default=True)
def policy(kind: str, name: str, mesh: str, output: str) -> None:
    """The Dataplanes a policy selects, and the inbounds and outbounds its items apply to."""
    rt = lookup_type(kind)
    if not rt.policy:
        raise click.ClickException(f"{rt.name} is not a policy type")
    with state().client() as client:
        body = client.get_path(paths.expand(paths.POLICY_DATAPLANES, mesh=mesh, plural=rt.plural, name=name))
    _emit(body.get("items") or [], output, reach_rows)


@inspect.command(
    name="control-planes",
    epilog="""\b
Examples:
  atoll inspect control-planes              # the instances sharing this CP's store
  atoll inspect control-planes -o json""",
)
@click.option("-o", "--output", type=OUTPUT, default="table", show_default=True)
def control_planes(output: str) -> None:
    """Control plane instances of this CP's role on its store: leader, version, uptime, proxies, zones."""
    with state().client() as client:
        body = client.get_path(paths.CONTROL_PLANES)
    items = body.get("items", []) if isinstance(body, dict) else []
    _emit(items, output, control_plane_rows)


def control_plane_rows(items: list[dict[str, Any]]) -> Table:
    header = ["INSTANCE", "ADDRESS", "LEADER", "STATUS", "VERSION", "UPTIME", "HEARTBEAT", "PROXIES", "ZONES"]
    rows = [
        [
            str(i.get("id", "")),
            str(i.get("address") or "-"),
            f"yes (term {i.get('term')})" if i.get("leader") else "no",
            "alive" if i.get("alive") else "silent",
            str(i.get("version") or "-"),
            _seconds(i.get("uptimeSeconds")),
            _seconds(i.get("heartbeatAgeSeconds")) + " ago",
            str(i.get("proxies", 0)),
            str(i.get("zones", 0)),
        ]
        for i in items
    ]
    return header, rows


def _seconds(value: object) -> str:
    secs = int(value) if isinstance(value, int | float) else 0
    if secs < 120:
        return f"{secs}s"
    return f"{secs // 60}m" if secs < 7200 else f"{secs // 3600}h"
