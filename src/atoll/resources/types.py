"""Resource types and the registry that knows them.

A ``ResourceType`` says what one kind of resource is: its name as written in YAML (``Dataplane``),
its spec model, whether it lives in a mesh or globally, whether its spec fields sit at the top level
of a Universal document (``flattened``) or under ``spec:``, and whether it is a ``Mesh*`` policy. ``plural`` is Kuma's
spelling of the type in REST paths (``external-services``, ``meshtrafficpermissions``);
``plural_aliases`` are older Atoll spellings that stay accepted.
The built-in types are exactly the modules listed in ``atoll.resources.models`` (one place): each
registers its type when the package imports it, and nothing outside that package registers a type,
so the registry is complete as soon as ``atoll.resources`` is importable and never depends on which
other packages were imported first (``tests/resources/test_registry.py`` checks it). REST paths and
CLI names are derived in the layers that own them from ``plural``/``name``; this descriptor stays
small on purpose.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel

from atoll.errors import FieldError, InvalidInput


class Scope(enum.Enum):
    MESH = "mesh"
    GLOBAL = "global"


@dataclass(frozen=True, slots=True)
class ResourceType:
    name: str
    spec_model: type[BaseModel]
    scope: Scope
    flattened: bool
    plural: str
    policy: bool = False
    # Where writes belong in a multi-zone deployment: "global" (Meshes, policies, ...) or "zone"
    # (Dataplanes, ZoneIngress, ...). Standalone CPs accept both.
    owner: str = "global"
    # Secrets are never listed to non-admin clients.
    secret: bool = False
    # Other spellings of ``plural`` still accepted (Atoll's own before it took Kuma's, e.g.
    # ``externalservices`` for ``external-services``): the API serves them as aliases, the CLI takes them.
    plural_aliases: tuple[str, ...] = ()

    @property
    def mesh_scoped(self) -> bool:
        return self.scope is Scope.MESH


_TYPES: dict[str, ResourceType] = {}


def register(rt: ResourceType) -> ResourceType:
    if rt.name in _TYPES and _TYPES[rt.name] != rt:
        raise RuntimeError(f"resource type {rt.name} registered twice")
    _TYPES[rt.name] = rt
    return rt


def register_type(
    name: str,
    spec_model: type[BaseModel],
    scope: Scope,
    *,
    plural: str,
    flattened: bool = True,
    owner: str = "global",
    secret: bool = False,
    plural_aliases: tuple[str, ...] = (),
) -> ResourceType:
    """Register a resource type that is not a ``Mesh*`` policy (those use ``register_policy``).

    The defaults are what most such types are: spec fields at the top level of a Universal document
    (``flattened``), written on the global control plane (``owner``), listed to every client."""
    return register(
        ResourceType(
            name=name,
            spec_model=spec_model,
            scope=scope,
            flattened=flattened,
            plural=plural,
            owner=owner,
            secret=secret,
            plural_aliases=plural_aliases,
        )
    )


def all_types() -> list[ResourceType]:
    return sorted(_TYPES.values(), key=lambda t: t.name)


def get_type(name: str) -> ResourceType:
    """The type named exactly ``name`` (as in YAML ``type:``), or ``InvalidInput`` naming ``type``."""
    try:
        return _TYPES[name]
    except KeyError:
        raise InvalidInput(
            FieldError("type", f'unsupported type "{name}"; known types: {", ".join(sorted(_TYPES))}'),
            title="unsupported type",
        ) from None


def find_type(word: str) -> ResourceType | None:
    """Case-insensitive lookup by name, plural or a plural alias (``dataplanes``, ``Dataplane``,
    ``external-services``, ``externalservices``)."""
    w = word.lower()
    for rt in _TYPES.values():
        if w in (rt.name.lower(), rt.plural) or w in rt.plural_aliases:
            return rt
    return None


def types_where(*, policy: bool | None = None, scope: Scope | None = None) -> Iterable[ResourceType]:
    for rt in all_types():
        if policy is not None and rt.policy != policy:
            continue
        if scope is not None and rt.scope is not scope:
            continue
        yield rt
