"""``atoll apply``, ``atoll get`` and ``atoll delete``: resources over the REST API.

``apply`` is all-or-nothing as far as the client can make it: it reads every file, substitutes
``--var`` values, decodes and validates every document locally (``atoll.resources.decode_all``) and
checks that each mesh-scoped resource's mesh exists (on the server or in the input) before it writes
anything. It then compares each resource with the stored one (created / updated / unchanged), writes
Meshes first and then the rest in input order with ``PUT``, and prints one line per resource, then
(on stderr) one ``stored, not enforced: <kind or field path>: <why>`` line per warning: the CP's
answer to the write, or, for a resource not written (unchanged, ``--dry-run``), the same table
(``atoll.topology.enforcement``) read here. ``--dry-run`` stops before writing. ``get`` lists or
shows resources as a table, YAML or JSON; ``delete`` removes one.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from atoll.cli.client import Client
from atoll.cli.common import state
from atoll.cli.completion import complete_name, complete_type
from atoll.cli.render import (
    cli_name,
    lookup_type,
    make_console,
    now_utc,
    print_table,
    table,
    to_json,
    to_yaml,
)
from atoll.dp.document import fill_placeholders
from atoll.errors import FieldError, InvalidInput
from atoll.resources import Resource, ResourceType, decode, decode_all, encode, get_type
from atoll.topology.enforcement import unenforced, warning_text

DEFAULT_MESH = "default"
_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")


# --- apply -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One resource to apply and where it came from (``label`` prefixes its error paths)."""

    resource: Resource[Any]
    label: str


def substitute(text: str, variables: dict[str, str], source: str) -> str:
    """``{{ name }}`` -> value for every ``--var name=value``; ``InvalidInput`` for a name not given.

    Only plain names are placeholders: ``{{ .Service }}`` (Kuma's own templates) is left alone.
    """
    out, missing = fill_placeholders(_VAR, text, variables)
    if missing:
        raise InvalidInput(
            [FieldError(source, f'variable "{n}" is not set: pass --var {n}=VALUE') for n in missing],
            title="missing template variables",
        )
    return out


def parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise click.BadParameter(f'"{p}" is not KEY=VALUE', param_hint="--var")
        out[key.strip()] = value
    return out


def read_items(files: tuple[str, ...], variables: dict[str, str]) -> list[Item]:
    """Decode every document of every file; one ``InvalidInput`` with every problem of every file."""
    errors: list[FieldError] = []
    items: list[Item] = []
    files = _expand(files)
    several = len(files) > 1
    for name in files:
        source = "stdin" if name == "-" else name
        try:
            text = sys.stdin.read() if name == "-" else _read(name)
            text = substitute(text, variables, source)
            resources = decode_all(text)
        except InvalidInput as e:
            errors.extend((e.prefixed(source) if several else e).errors)
            continue
        many = len(resources) > 1
        for i, r in enumerate(resources):
            label = (source if several else "") + (f"[{i}]" if many else "")
            items.append(Item(r, label))
    seen: dict[tuple[str, str | None, str], str] = {}
    for it in items:
        k = (it.resource.type, it.resource.mesh, it.resource.name)
        if k in seen:
            errors.append(
                FieldError(
                    _path(it.label, "name"),
                    f'duplicate: {it.resource.type} "{it.resource.name}" also appears at {seen[k] or "the start"}',
                )
            )
        else:
            seen[k] = it.label
    if errors:
        raise InvalidInput(errors, title="invalid input: nothing was applied")
    return items


def _expand(files: tuple[str, ...]) -> tuple[str, ...]:
    """Files as given, a directory standing for its ``*.yaml``, ``*.yml`` and ``*.json`` files (sorted)."""
    out: list[str] = []
    for f in files:
        p = Path(f)
        if f != "-" and p.is_dir():
            out += sorted(str(c) for c in p.iterdir() if c.suffix in (".yaml", ".yml", ".json") and c.is_file())
        else:
            out.append(f)
    return tuple(out)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise InvalidInput(FieldError("", f"{path}: no such file"), title="cannot read input") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(FieldError("", f"{path}: {e}"), title="cannot read input") from None


def _path(label: str, field: str) -> str:
    return f"{label}.{field}" if label else field


def _comparable(doc: dict[str, Any]) -> dict[str, Any] | None:
    """A stored document in the exact shape ``encode`` gives our input, or ``None`` if it does not decode."""
    try:
        return encode(decode(doc), with_times=False)
    except InvalidInput:
        return None


def plan(client: Client, items: list[Item]) -> list[tuple[Item, str]]:
    """Each item with its action (created / updated / unchanged), Meshes first; ``InvalidInput`` if a
    mesh is missing. Reads only."""
    mesh_type = get_type("Mesh")
    ordered = [it for it in items if it.resource.type == "Mesh"] + [it for it in items if it.resource.type != "Mesh"]
    applied_meshes = {it.resource.name for it in items if it.resource.type == "Mesh"}
    known_meshes: dict[str, bool] = {}
    errors: list[FieldError] = []
    out: list[tuple[Item, str]] = []
    for it in ordered:
        r = it.resource
        rt = get_type(r.type)
        if rt.mesh_scoped and r.mesh is not None and r.mesh not in applied_meshes:
            if r.mesh not in known_meshes:
                known_meshes[r.mesh] = client.get(mesh_type, r.mesh, None) is not None
            if not known_meshes[r.mesh]:
                errors.append(
                    FieldError(
                        _path(it.label, "mesh"), f'mesh "{r.mesh}" does not exist: apply a Mesh named "{r.mesh}" first'
                    )
                )
                continue
        current = client.get(rt, r.name, r.mesh)
        if current is None:
            action = "created"
        elif _comparable(current) == encode(r, with_times=False):
            action = "unchanged"
        else:
            action = "updated"
        out.append((it, action))
    if errors:
        raise InvalidInput(errors, title="invalid input: nothing was applied")
    return out


def outcome(rt: ResourceType, name: str, mesh: str | None, action: str, *, dry_run: bool = False) -> str:
    """The line printed per resource: ``dataplane/web-1 created (mesh default, dry run)``."""
    notes = ([f"mesh {mesh}"] if rt.mesh_scoped and mesh else []) + (["dry run"] if dry_run else [])
    return f"{cli_name(rt)}/{name} {action}" + (f" ({', '.join(notes)})" if notes else "")


@click.command(
    epilog="""\b
Examples:
  atoll apply -f mesh.yaml -f dataplanes.yaml
  atoll apply -f ./policies/
  cat policies.yaml | atoll apply -f -
  atoll apply -f dp.yaml --var address=10.0.0.7 --dry-run""",
)
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    required=True,
    metavar="FILE|DIR|-",
    help="YAML/JSON file (multi-document), a directory of them, or '-' for stdin. Repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Validate and show what would change; write nothing.")
@click.option("--var", "var_pairs", multiple=True, metavar="KEY=VALUE", help="Replace {{ KEY }} in the input.")
def apply(files: tuple[str, ...], dry_run: bool, var_pairs: tuple[str, ...]) -> None:
    """Create or update resources from YAML/JSON files.

    Every document of every file is validated first; if any is wrong, nothing is written."""
    items = read_items(files, parse_vars(var_pairs))
    with state().client() as client:
        actions = plan(client, items)
        for it, action in actions:
            r = it.resource
            warnings: tuple[str, ...] | list[str]
            if not dry_run and action != "unchanged":
                warnings = client.put(get_type(r.type), encode(r, with_times=False)).warnings
            else:  # nothing written, so the CP said nothing: the same table, read here
                warnings = unenforced(r)
            click.echo(outcome(get_type(r.type), r.name, r.mesh, action, dry_run=dry_run))
            for w in warnings:
                click.echo("  " + warning_text(w), err=True)


# --- get / delete ----------------------------------------------------------------------------------


def _mesh_for(rt: ResourceType, mesh: str | None) -> str | None:
    return (mesh or DEFAULT_MESH) if rt.mesh_scoped else None


def _where(rt: ResourceType, mesh: str | None) -> str:
    return f' in mesh "{mesh}"' if rt.mesh_scoped and mesh else ""


@click.command(
    epilog="""\b
Examples:
  atoll get meshes
  atoll get dataplanes -m default
  atoll get dataplanes --all-meshes
  atoll get meshtrafficpermission allow-all -o yaml""",
)
@click.argument("type_name", metavar="TYPE", shell_complete=complete_type)
@click.argument("name", required=False, shell_complete=complete_name)
@click.option("-m", "--mesh", metavar="MESH", help=f"Mesh of mesh-scoped types (default: {DEFAULT_MESH}).")
@click.option("-A", "--all-meshes", is_flag=True, help="List a mesh-scoped type in every mesh.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "yaml", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
def get(type_name: str, name: str | None, mesh: str | None, all_meshes: bool, output: str) -> None:
    """List resources of a type, or show one by name.

    TYPE is plural or singular, in any case: dataplanes, Dataplane, meshtrafficpermission."""
    rt = lookup_type(type_name)
    if all_meshes and name:
        raise click.UsageError("--all-meshes lists resources; it cannot be used with a NAME")
    m = None if all_meshes and rt.mesh_scoped else _mesh_for(rt, mesh)
    with state().client() as client:
        if name is not None:
            doc = client.get(rt, name, m)
            if doc is None:
                raise InvalidInput(
                    FieldError("", f'{cli_name(rt)} "{name}" does not exist{_where(rt, m)}'), title="not found"
                )
            docs = [doc]
        else:
            docs = client.list(rt, m)
    if output == "yaml":
        click.echo(to_yaml(docs), nl=False)
    elif output == "json":
        click.echo(to_json(docs[0] if name is not None else {"total": len(docs), "items": docs}))
    elif not docs:
        click.echo(f"No {rt.plural} found{_where(rt, m)}.", err=True)
    else:
        header, rows = table(rt, docs, now_utc())
        print_table(make_console(), header, rows)


@click.command(
    epilog="""\b
Examples:
  atoll delete dataplane web-1 -m default
  atoll delete mesh demo
  atoll delete mesh demo --force          # even though Dataplanes are still in it""",
)
@click.argument("type_name", metavar="TYPE", shell_complete=complete_type)
@click.argument("name", shell_complete=complete_name)
@click.option("-m", "--mesh", metavar="MESH", help=f"Mesh of mesh-scoped types (default: {DEFAULT_MESH}).")
@click.option(
    "--force", is_flag=True, help="Delete a mesh that still has Dataplanes (refused without it), and all in it."
)
def delete(type_name: str, name: str, mesh: str | None, force: bool) -> None:
    """Delete one resource by type and name."""
    rt = lookup_type(type_name)
    m = _mesh_for(rt, mesh)
    with state().client() as client:
        client.delete(rt, name, m, force=force)
    click.echo(outcome(rt, name, m, "deleted"))
