"""How the CLI names resource types and shows resources: type lookup, table columns, output formats.

``lookup_type`` turns what a user typed (``dataplanes``, ``Dataplane``, ``MeshTrafficPermission``)
into a ``ResourceType``. ``table`` turns Universal documents (as the REST API returns them) into a
header and rows of strings: NAME, MESH (for mesh-scoped types), columns particular to the type, AGE.
It is pure (the clock is a parameter) so that tests check rows directly; ``print_table`` draws them
with rich. ``to_yaml``/``to_json`` print documents for ``-o yaml|json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
import yaml
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from atoll.resources import ResourceType, all_types, find_type


class UnknownType(click.UsageError):
    """The user named a resource type that does not exist."""


def cli_name(rt: ResourceType) -> str:
    """The name of a type in CLI messages: ``dataplane``, ``meshtrafficpermission``."""
    return rt.name.lower()


def lookup_type(word: str) -> ResourceType:
    """The type a user means by ``word`` (plural or singular, any case); ``UnknownType`` otherwise."""
    rt = find_type(word)
    if rt is None:
        w = word.lower()
        for t in all_types():
            # Forgiving plurals: "meshtimeouts" -> MeshTimeout, "mesh" handled by find_type.
            if w in (t.name.lower() + "s", t.name.lower() + "es"):
                rt = t
                break
    if rt is None:
        known = ", ".join(t.plural for t in all_types())
        raise UnknownType(f'unknown resource type "{word}"; known types: {known}')
    return rt


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    value: Callable[[dict[str, Any]], str]


def _spec(doc: dict[str, Any], rt: ResourceType) -> dict[str, Any]:
    if rt.flattened:
        return doc
    spec = doc.get("spec")
    return spec if isinstance(spec, dict) else {}


def _get(data: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(data, dict):
            return None
        data = data.get(p)
    return data


def _mtls(doc: dict[str, Any]) -> str:
    enabled = _get(doc, "mtls", "enabledBackend")
    if not enabled:
        return "off"
    backends = _get(doc, "mtls", "backends") or []
    for b in backends if isinstance(backends, list) else []:
        if isinstance(b, dict) and b.get("name") == enabled:
            mode = b.get("mode") or "STRICT"
            return f"{b.get('type', '?')}/{enabled} ({mode})"
    return str(enabled)


def _dp_address(doc: dict[str, Any]) -> str:
    net = doc.get("networking")
    if not isinstance(net, dict):
        return ""
    addr = str(net.get("address", ""))
    adv = net.get("advertisedAddress")
    return f"{addr} ({adv})" if adv else addr


def _dp_services(doc: dict[str, Any]) -> str:
    net = doc.get("networking")
    if not isinstance(net, dict):
        return ""
    services: list[str] = []
    inbound = net.get("inbound") or []
    for ib in inbound if isinstance(inbound, list) else []:
        svc = _get(ib, "tags", "kuma.io/service")
        if isinstance(svc, str) and svc not in services:
            services.append(svc)
    gw = _get(net, "gateway", "tags", "kuma.io/service")
    if isinstance(gw, str) and gw not in services:
        services.append(f"{gw} (gateway)")
    return ",".join(services)


def _host_port(net: Any, addr_key: str = "address", port_key: str = "port") -> str:
    if not isinstance(net, dict) or not net.get(addr_key):
        return ""
    port = net.get(port_key)
    return f"{net[addr_key]}:{port}" if port is not None else str(net[addr_key])


def _target_ref(spec: dict[str, Any]) -> str:
    ref = spec.get("targetRef")
    if not isinstance(ref, dict):
        return "Mesh" if spec else ""
    kind = str(ref.get("kind", ""))
    if ref.get("name"):
        return f"{kind}/{ref['name']}"
    for key in ("tags", "labels"):
        selector = ref.get(key)
        if isinstance(selector, dict) and selector:
            return kind + " " + ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    return kind


def _columns(rt: ResourceType) -> list[Column]:
    if rt.name == "Mesh":
        return [Column("MTLS", _mtls)]
    if rt.name == "Dataplane":
        return [Column("ADDRESS", _dp_address), Column("SERVICES", _dp_services)]
    if rt.name == "ZoneIngress":
        return [
            Column("ZONE", lambda d: str(d.get("zone") or "")),
            Column("ADDRESS", lambda d: _host_port(d.get("networking"))),
            Column("ADVERTISED", lambda d: _host_port(d.get("networking"), "advertisedAddress", "advertisedPort")),
        ]
    if rt.name == "ZoneEgress":
        return [
            Column("ZONE", lambda d: str(d.get("zone") or "")),
            Column("ADDRESS", lambda d: _host_port(d.get("networking"))),
        ]
    if rt.name == "Zone":
        return [Column("ENABLED", lambda d: "false" if d.get("enabled") is False else "true")]
    if rt.name == "ExternalService":
        return [
            Column("ADDRESS", lambda d: str(_get(d, "networking", "address") or "")),
            Column("SERVICE", lambda d: str(_get(d, "tags", "kuma.io/service") or "")),
        ]
    if rt.policy:
        return [Column("TARGETREF", lambda d: _target_ref(_spec(d, rt)))]
    return []


def age(created: Any, now: datetime) -> str:
    """``42s``, ``5m``, ``3h``, ``12d`` since ``created`` (an ISO timestamp); ``""`` if unknown."""
    if not isinstance(created, str):
        return ""
    try:
        t = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    secs = max(0, int((now - t).total_seconds()))
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 2 * 86400:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def table(rt: ResourceType, docs: Sequence[dict[str, Any]], now: datetime) -> tuple[list[str], list[list[str]]]:
    """The header and rows of ``atoll get <type>`` for ``docs`` (sorted by mesh, then name)."""
    cols = _columns(rt)
    header = ["NAME"] + (["MESH"] if rt.mesh_scoped else []) + [c.header for c in cols] + ["AGE"]
    rows: list[list[str]] = []
    for d in sorted(docs, key=lambda d: (str(d.get("mesh", "")), str(d.get("name", "")))):
        row = [str(d.get("name", ""))]
        if rt.mesh_scoped:
            row.append(str(d.get("mesh", "")))
        row += [c.value(d) for c in cols]
        row.append(age(d.get("creationTime"), now))
        rows.append(row)
    return header, rows


def make_console(stderr: bool = False) -> Console:
    """A rich console; when not on a terminal, wide enough that tables are not wrapped."""
    c = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not c.is_terminal:
        c = Console(stderr=stderr, highlight=False, soft_wrap=False, width=250)
    return c


def print_table(console: Console, header: list[str], rows: list[list[str]]) -> None:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for h in header:
        t.add_column(h, overflow="fold", no_wrap=False)
    for r in rows:
        t.add_row(*(Text(c) for c in r))  # Text: no rich markup in user data ([0], [bold])
    console.print(t)


def to_yaml(docs: Sequence[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False, default_flow_style=False, allow_unicode=True)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2)


def now_utc() -> datetime:
    return datetime.now(UTC)
