"""MeshTrafficPermission settings: who may call an inbound, by tags (``from[]``) or SPIFFE ID (``rules[]``).

Not a merge of ``default`` blocks: every ``from[]`` item that selects an inbound becomes one
``Permission`` (the caller's required tags and the action), least to most specific, and a caller
gets the action of the **last** one whose tags it has. ``rules[]`` items are appended into one
``IdentityRules`` per inbound (deny before allow). The RBAC generator turns both into Envoy config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from atoll.topology.tags import SERVICE_TAG, Tags

__all__ = [
    "ACTIONS",
    "NO_IDENTITY_RULES",
    "TRAFFIC_PERMISSION",
    "Action",
    "IdentityRules",
    "Permission",
    "SpiffeMatch",
    "identity_rules",
    "permission",
]

TRAFFIC_PERMISSION = "MeshTrafficPermission"
Action = Literal["Allow", "Deny", "AllowWithShadowDeny"]
ACTIONS: frozenset[str] = frozenset(("Allow", "Deny", "AllowWithShadowDeny"))
SpiffeMatch = tuple[Literal["Exact", "Prefix"], str]
"""A caller's SPIFFE ID matched exactly or by prefix: ``("Exact", "spiffe://default/web")``."""


@dataclass(frozen=True, slots=True)
class Permission:
    """Callers having all of ``source`` tags get ``action`` (unless a later permission matches them)."""

    source: Tags
    action: Action
    policy: str


@dataclass(frozen=True, slots=True)
class IdentityRules:
    """MeshTrafficPermission ``rules[]`` of one inbound: SPIFFE ID matches, the lists of every
    applicable policy appended (in policy order). A caller matching ``deny`` is denied; else one
    matching ``allow_with_shadow_deny`` or ``allow`` is allowed (the first only in enforcement: the
    shadow decision is deny); else ``from[]`` permissions decide."""

    allow: tuple[SpiffeMatch, ...] = ()
    deny: tuple[SpiffeMatch, ...] = ()
    allow_with_shadow_deny: tuple[SpiffeMatch, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.allow or self.deny or self.allow_with_shadow_deny)


NO_IDENTITY_RULES = IdentityRules()


def _source_tags(ref: Mapping[str, Any]) -> Tags | None:
    """The tags a caller needs to match a ``from[]`` targetRef: ``{}`` for Mesh, ``kuma.io/service``
    for MeshService, the tags for MeshSubset, both for MeshServiceSubset."""
    kind = ref.get("kind")
    if kind == "Mesh":
        return Tags()
    if kind == "MeshSubset":
        return Tags(ref.get("tags") or {})
    if kind == "MeshService":
        return Tags({SERVICE_TAG: str(ref.get("name"))})
    if kind == "MeshServiceSubset":
        return Tags({**(ref.get("tags") or {}), SERVICE_TAG: str(ref.get("name"))})
    return None


def permission(item: Mapping[str, Any], policy: str) -> Permission | None:
    """The permission of one ``from[]`` item of ``policy``; None when it names no caller or action.
    An action other than the three known ones denies (as the RBAC generator treats it)."""
    source = _source_tags(item.get("targetRef") or {})
    action = (item.get("default") or {}).get("action")
    if source is None or not isinstance(action, str):
        return None
    return Permission(source=source, action=cast(Action, action) if action in ACTIONS else "Deny", policy=policy)


def identity_rules(items: Iterable[Mapping[str, Any]]) -> IdentityRules:
    """The ``rules[]`` items of the policies selecting one inbound (in policy order), appended."""
    found: dict[str, list[SpiffeMatch]] = {"allow": [], "deny": [], "allowWithShadowDeny": []}
    for item in items:
        for key, matches in found.items():
            for match in (item.get("default") or {}).get(key) or ():
                sid = match.get("spiffeID") or {}
                kind: Literal["Exact", "Prefix"] = "Prefix" if sid.get("type") == "Prefix" else "Exact"
                matches.append((kind, str(sid.get("value"))))
    return IdentityRules(
        allow=tuple(found["allow"]),
        deny=tuple(found["deny"]),
        allow_with_shadow_deny=tuple(found["allowWithShadowDeny"]),
    )
