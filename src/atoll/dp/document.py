"""The proxy's own resource document: templating and local validation (pure, no I/O).

``atoll dp run --dataplane-file F --dataplane-var k=v`` reads a Universal document that may hold
``{{ name }}`` placeholders. ``render_template`` replaces each from the variables given and fails with
one ``FieldError`` per placeholder left without a value, naming it. ``load_proxy_resource`` then
decodes the rendered text with ``atoll.resources.decode`` (so the user sees the same precise field
errors as ``atoll apply`` would give) and checks that the resource type fits the proxy type
(``dataplane`` -> ``Dataplane``, ``ingress`` -> ``ZoneIngress``, ``egress`` -> ``ZoneEgress``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, cast

from atoll.errors import FieldError, InvalidInput
from atoll.resources import Resource, decode, load_documents
from atoll.resources.proxy_id import PROXY_TYPE_NAMES

ProxyType = Literal["dataplane", "ingress", "egress"]
PROXY_TYPES = cast(tuple[ProxyType, ...], PROXY_TYPE_NAMES)
RESOURCE_TYPE_OF: Mapping[ProxyType, str] = {
    "dataplane": "Dataplane",
    "ingress": "ZoneIngress",
    "egress": "ZoneEgress",
}

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}")
_BROKEN = re.compile(r"\{\{[^}]*\}\}")


def parse_vars(items: Iterable[str]) -> dict[str, str]:
    """``["name=web-1", "port=8080"]`` -> ``{"name": "web-1", "port": "8080"}``; the value may hold ``=``."""
    out: dict[str, str] = {}
    errors: list[FieldError] = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            errors.append(FieldError("--dataplane-var", f'"{item}" is not of the form name=value'))
            continue
        out[key] = value
    if errors:
        raise InvalidInput(errors, title="invalid --dataplane-var")
    return out


def fill_placeholders(pattern: re.Pattern[str], text: str, variables: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with each match of ``pattern`` (group 1: a variable's name) replaced by its value, and
    the names that have none, in order of first use (their placeholders are left as they were).

    Shared by the agent's dataplane files and ``atoll apply --var``, which differ in what a name may be
    and in how they report a missing one."""
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in variables:
            return variables[name]
        if name not in missing:
            missing.append(name)
        return m.group(0)

    return pattern.sub(sub, text), missing


def render_template(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with every ``{{ name }}`` replaced by ``variables[name]``.

    A placeholder with no value is an error naming it (all of them, in order of first use);
    a ``{{ ... }}`` that is not a valid placeholder name is an error too.
    """
    rendered, missing = fill_placeholders(_PLACEHOLDER, text, variables)
    errors = [
        FieldError(f"{{{{ {name} }}}}", f'template variable "{name}" has no value; pass --dataplane-var {name}=VALUE')
        for name in missing
    ]
    for m in _BROKEN.finditer(_PLACEHOLDER.sub("", rendered)):
        errors.append(FieldError(m.group(0), "not a valid template placeholder; use {{ name }}"))
    if errors:
        raise InvalidInput(errors, title="unreplaced template variables in the dataplane file")
    return rendered


def load_proxy_resource(
    text: str, variables: Mapping[str, str], proxy_type: ProxyType | None = "dataplane"
) -> Resource[Any]:
    """Render, parse and validate the proxy's resource; ``InvalidInput`` naming each bad field.
    ``proxy_type`` ``None`` takes any of the three types (``proxy_type_of`` then says which it is)."""
    rendered = render_template(text, variables)
    docs = load_documents(rendered)
    if len(docs) != 1:
        raise InvalidInput(
            f"the dataplane file must hold exactly one resource, found {len(docs)}", title="invalid dataplane file"
        )
    resource = decode(docs[0])
    if proxy_type is None:
        if resource.type not in RESOURCE_TYPE_OF.values():
            kinds = ", ".join(RESOURCE_TYPE_OF.values())
            raise InvalidInput(
                FieldError("type", f"a proxy needs a {kinds} resource, got {resource.type}"),
                title="invalid dataplane file",
            )
        return resource
    want = RESOURCE_TYPE_OF[proxy_type]
    if resource.type != want:
        raise InvalidInput(
            FieldError("type", f'a proxy of type "{proxy_type}" needs a {want} resource, got {resource.type}'),
            title="invalid dataplane file",
        )
    return resource


def proxy_type_of(resource: Resource[Any]) -> ProxyType:
    """The proxy type a Dataplane, ZoneIngress or ZoneEgress resource runs as."""
    for proxy_type, type_name in RESOURCE_TYPE_OF.items():
        if resource.type == type_name:
            return proxy_type
    raise ValueError(f"{resource.type} is no proxy's resource type")


def admin_port_of(resource: Resource[Any]) -> int | None:
    """``networking.admin.port`` of the resource, if set (Dataplane, ZoneIngress and ZoneEgress have it)."""
    networking = getattr(resource.spec, "networking", None)
    admin = getattr(networking, "admin", None)
    port = getattr(admin, "port", None)
    return port if isinstance(port, int) else None
