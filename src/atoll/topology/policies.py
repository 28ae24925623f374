"""Which ``Mesh*`` policies apply to a proxy, and the configuration they fold into (pure).

Generic for every policy kind; the policies are read in their JSON form (``Resource.spec_dict``:
camelCase, only the fields the user set), so folding ``default`` blocks is plain RFC 7396 JSON merge
patch. The rules follow Kuma's:

1. **Selection** by the top-level ``targetRef`` (missing = ``Mesh``); ``proxyTypes``, when set, must
   name ``Sidecar``. ``Mesh`` selects the proxy and all its inbounds; ``MeshSubset`` (``tags``) the
   inbounds whose tags include those tags; ``MeshService`` (``name``) the inbounds of that service;
   ``MeshServiceSubset`` both; ``Dataplane`` the proxy whose name is ``name`` and/or whose labels
   include ``labels`` (``sectionName`` narrows it to the inbound of that name or port). A policy
   applies to the proxy's outbounds when it selects the proxy or any of its inbounds, and to an
   inbound's traffic when it selects that inbound.
2. **Order** (``sort_policies``): by the top-level targetRef kind (``KIND_ORDER``: Mesh < MeshSubset
   < MeshService < MeshServiceSubset < Dataplane), then by origin (``kuma.io/origin: global`` before
   zone-originated or local ones), then by name *descending*, so that of two equally specific
   policies the one whose name sorts first comes last and wins (Kuma's inverted name order).
3. **Folding**: the ``to[]`` items of the applicable policies that match an outbound (``Mesh``;
   ``MeshService`` whose name is the service; ``MeshServiceSubset`` also needing its tags on the
   outbound) and the ``from[]`` items with a ``Mesh`` source plus every ``rules[]`` item of the
   policies that select an inbound are taken in policy order, then sorted (stably) by their own
   targetRef kind, and their ``default`` blocks merged in that order with ``merge_patch``: the
   later, more specific one wins field by field, objects merge, arrays and scalars replace, ``null``
   deletes.
4. **MeshTrafficPermission** is per caller, not per inbound: ``permissions`` lists one ``Permission``
   (the caller's required tags — ``{}`` for Mesh, ``{kuma.io/service: name}`` for MeshService, the
   tags for MeshSubset, both for MeshServiceSubset — and the action) per ``from[]`` item, in the same
   least-to-most specific order: a caller gets the action of the **last** permission whose tags it
   has; no permission matching means denied. The RBAC generator turns this list into Envoy config.
   MeshTrafficPermission ``rules[]`` (callers by SPIFFE ID) are collected per inbound into
   ``IdentityRules``: the lists of all applicable policies appended, deny before allow.

Results are frozen values (``Conf``, tuples, ``Tags``) so views stay hashable and comparable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atoll.resources.meta import Resource
from atoll.topology.tags import SERVICE_TAG, Tags

__all__ = [
    "EMPTY_CONF",
    "KIND_ORDER",
    "ORIGIN_LABEL",
    "TRAFFIC_PERMISSION",
    "Conf",
    "InboundRef",
    "MatchedPolicies",
    "Permission",
    "PolicyEntry",
    "freeze",
    "match_policies",
    "merge_patch",
    "selects",
    "sort_policies",
    "thaw",
]

TRAFFIC_PERMISSION = "MeshTrafficPermission"
ORIGIN_LABEL = "kuma.io/origin"
KIND_ORDER: Mapping[str, int] = {
    "Mesh": 1,
    "MeshSubset": 2,
    "MeshGateway": 3,
    "MeshService": 4,
    "MeshExternalService": 5,
    "MeshMultiZoneService": 6,
    "MeshServiceSubset": 7,
    "MeshHTTPRoute": 8,
    "Dataplane": 9,
}
_MESH_REF: Mapping[str, Any] = {"kind": "Mesh"}


class Conf(Mapping[str, Any]):
    """A frozen JSON object: keys sorted, values frozen (objects are ``Conf``, arrays tuples); hashable."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        items = tuple(sorted((k, freeze(v)) for k, v in (data or {}).items()))
        self._data: dict[str, Any] = dict(items)
        self._hash = hash(items)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Conf):
            return self._hash == other._hash and self._data == other._data
        return isinstance(other, Mapping) and self._data == dict(other)

    def __repr__(self) -> str:
        return f"Conf({thaw(self)!r})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = thaw(self)
        return out


EMPTY_CONF = Conf()


def freeze(value: Any) -> Any:
    """Plain JSON data -> frozen (``Conf`` for objects, tuples for arrays)."""
    if isinstance(value, Conf):
        return value
    if isinstance(value, Mapping):
        return Conf(value)
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Frozen data -> plain JSON data (dicts and lists)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch of plain (or frozen) data; returns new plain data, inputs untouched."""
    if not isinstance(patch, Mapping):
        return thaw(patch)
    out: dict[str, Any] = thaw(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@dataclass(frozen=True, slots=True)
class Permission:
    """Callers having all of ``source`` tags get ``action`` (unless a later permission matches them)."""

    source: Tags
    action: str
    policy: str


@dataclass(frozen=True, slots=True)
class IdentityRules:
    """MeshTrafficPermission ``rules[]`` of one inbound: SPIFFE ID matches ``(type, value)`` with
    type ``Exact`` or ``Prefix``, the lists of every applicable policy appended (in policy order).
    A caller matching ``deny`` is denied; else one matching ``allow_with_shadow_deny`` or ``allow``
    is allowed (the first only in enforcement: the shadow decision is deny); else ``from[]``
    permissions decide."""

    allow: tuple[tuple[str, str], ...] = ()
    deny: tuple[tuple[str, str], ...] = ()
    allow_with_shadow_deny: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.allow or self.deny or self.allow_with_shadow_deny)


NO_IDENTITY_RULES = IdentityRules()


@dataclass(frozen=True, slots=True)
class InboundRef:
    """What selection needs of one inbound: its tags, name and port."""

    tags: Tags
    name: str | None
    port: int | None


@dataclass(frozen=True, slots=True)
class MatchedPolicies:
    """``match_policies``' result: the names of the policies selecting the proxy, and per outbound /
    per inbound (in the order given) the merged ``default`` per kind and the permissions."""

    names: tuple[tuple[str, str], ...]
    outbounds: tuple[Conf, ...]
    inbounds: tuple[Conf, ...]
    permissions: tuple[tuple[Permission, ...], ...]
    identity_rules: tuple[IdentityRules, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyEntry:
    """One policy as matching reads it: its type, name and spec as plain JSON data (camelCase)."""

    type: str
    name: str
    spec: Mapping[str, Any]

    @classmethod
    def of(cls, policy: Resource[Any]) -> PolicyEntry:
        return cls(type=policy.type, name=policy.name, spec=policy.spec_dict())


def _origin_rank(policy: Resource[Any]) -> int:
    return 0 if policy.meta.labels.get(ORIGIN_LABEL) == "global" else 1


def _top_ref(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = spec.get("targetRef")
    return ref if isinstance(ref, Mapping) else _MESH_REF


def sort_policies(policies: Iterable[Resource[Any]]) -> tuple[PolicyEntry, ...]:
    """Least to most specific (see the module docstring): the last one wins when merged."""
    by_name_desc = sorted(policies, key=lambda p: (p.type, p.name), reverse=True)
    ranked = [(KIND_ORDER.get(str(_top_ref(p.spec_dict()).get("kind")), 0), _origin_rank(p), p) for p in by_name_desc]
    return tuple(PolicyEntry.of(p) for _, _, p in sorted(ranked, key=lambda r: (r[0], r[1])))


def _has_tags(tags: Mapping[str, str], required: Mapping[str, Any] | None) -> bool:
    return all(tags.get(k) == v for k, v in (required or {}).items())


def selects(
    ref: Mapping[str, Any], dataplane: str, labels: Mapping[str, str], inbounds: Sequence[InboundRef]
) -> tuple[bool, frozenset[int]]:
    """Whether the top-level ``ref`` selects the proxy (for its outbounds), and which inbounds (indexes)."""
    proxy_types = ref.get("proxyTypes")
    if proxy_types and "Sidecar" not in proxy_types:
        return False, frozenset()
    everything = frozenset(range(len(inbounds)))
    kind = ref.get("kind", "Mesh")
    name = ref.get("name")
    if kind == "Mesh":
        return True, everything
    if kind == "Dataplane":
        if name is not None and name != dataplane:
            return False, frozenset()
        if not _has_tags(labels, ref.get("labels")):
            return False, frozenset()
        section = ref.get("sectionName")
        if section is None:
            return True, everything
        return True, frozenset(i for i, ib in enumerate(inbounds) if section in (ib.name, str(ib.port)))
    if kind == "MeshSubset":
        chosen = frozenset(i for i, ib in enumerate(inbounds) if _has_tags(ib.tags, ref.get("tags")))
    elif kind in ("MeshService", "MeshServiceSubset"):
        chosen = frozenset(
            i
            for i, ib in enumerate(inbounds)
            if ib.tags.get(SERVICE_TAG) == name and (kind == "MeshService" or _has_tags(ib.tags, ref.get("tags")))
        )
    else:  # MeshGateway, MeshHTTPRoute, ...: not a sidecar selector
        return False, frozenset()
    if kind == "MeshSubset" and not ref.get("tags"):
        return True, everything
    return bool(chosen), chosen


def _to_matches(ref: Mapping[str, Any], service: str, tags: Mapping[str, str]) -> bool:
    kind = ref.get("kind")
    if kind == "Mesh":
        return True
    if kind == "MeshService":
        return ref.get("name") == service
    if kind == "MeshServiceSubset":
        return ref.get("name") == service and _has_tags(tags, ref.get("tags"))
    return False


def _source_tags(ref: Mapping[str, Any]) -> Tags | None:
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


def _item_rank(item: Mapping[str, Any]) -> int:
    ref = item.get("targetRef")
    return KIND_ORDER.get(str(ref.get("kind")), 0) if isinstance(ref, Mapping) else 0


# Memo of ``_fold``: proxies reaching the same service under the same policies fold the same items, so
# the merge is done once per mesh view, not once per proxy (it was most of a proxy's generation time).
# Keyed by the identity of the items; an entry holds the items themselves, so an id cannot be reused
# by another object while its entry exists. Bounded: cleared when it grows past ``_FOLD_MEMO_MAX``.
_FOLD_MEMO: dict[tuple[tuple[str, int], ...], tuple[tuple[Mapping[str, Any], ...], Conf]] = {}
_FOLD_MEMO_MAX = 20_000


def _fold(items: list[tuple[str, Mapping[str, Any]]]) -> Conf:
    """Merge the ``default`` of (kind, item) pairs (already in policy order), per kind."""
    key = tuple((kind, id(item)) for kind, item in items)
    hit = _FOLD_MEMO.get(key)
    if hit is not None:
        return hit[1]
    conf = _fold_items(items)
    if len(_FOLD_MEMO) >= _FOLD_MEMO_MAX:
        _FOLD_MEMO.clear()
    _FOLD_MEMO[key] = (tuple(item for _, item in items), conf)
    return conf


def _fold_items(items: list[tuple[str, Mapping[str, Any]]]) -> Conf:
    merged: dict[str, Any] = {}
    for kind, item in sorted(items, key=lambda ki: _item_rank(ki[1])):  # stable: keeps policy order
        merged[kind] = merge_patch(merged.get(kind, {}), item.get("default") or {})
    return Conf(merged)


def match_policies(
    policies: Sequence[PolicyEntry],
    *,
    dataplane: str,
    labels: Mapping[str, str],
    inbounds: Sequence[InboundRef],
    outbounds: Sequence[tuple[str, Mapping[str, str]]],
) -> MatchedPolicies:
    """Apply ``policies`` (already ordered by ``sort_policies``) to one proxy: its ``inbounds`` and its
    ``outbounds`` as (service, tags)."""
    names: list[tuple[str, str]] = []
    to_items: list[list[tuple[str, Mapping[str, Any]]]] = [[] for _ in outbounds]
    in_items: list[list[tuple[str, Mapping[str, Any]]]] = [[] for _ in inbounds]
    perm_items: list[list[tuple[Mapping[str, Any], str]]] = [[] for _ in inbounds]
    id_rules: list[dict[str, list[tuple[str, str]]]] = [{} for _ in inbounds]
    for policy in policies:
        spec = policy.spec
        proxy, chosen = selects(_top_ref(spec), dataplane, labels, inbounds)
        if not proxy and not chosen:
            continue
        names.append((policy.type, policy.name))
        if proxy:
            for item in spec.get("to") or ():
                for i, (service, tags) in enumerate(outbounds):
                    if _to_matches(item.get("targetRef") or {}, service, tags):
                        to_items[i].append((policy.type, item))
        for i in sorted(chosen):
            for item in spec.get("from") or ():
                if policy.type == TRAFFIC_PERMISSION:
                    perm_items[i].append((item, policy.name))
                elif (item.get("targetRef") or {}).get("kind") == "Mesh":
                    in_items[i].append((policy.type, item))
            for item in spec.get("rules") or ():
                if policy.type != TRAFFIC_PERMISSION:
                    in_items[i].append((policy.type, {"targetRef": _MESH_REF, **item}))
                    continue
                for key in ("allow", "deny", "allowWithShadowDeny"):
                    for match in (item.get("default") or {}).get(key) or ():
                        sid = match.get("spiffeID") or {}
                        id_rules[i].setdefault(key, []).append((str(sid.get("type")), str(sid.get("value"))))
    permissions = []
    for items in perm_items:
        perms: list[Permission] = []
        for item, name in sorted(items, key=lambda it: _item_rank(it[0])):
            source = _source_tags(item.get("targetRef") or {})
            action = (item.get("default") or {}).get("action")
            if source is not None and isinstance(action, str):
                perms.append(Permission(source=source, action=action, policy=name))
        permissions.append(tuple(perms))
    return MatchedPolicies(
        names=tuple(names),
        outbounds=tuple(_fold(items) for items in to_items),
        inbounds=tuple(_fold(items) for items in in_items),
        permissions=tuple(permissions),
        identity_rules=tuple(
            IdentityRules(
                allow=tuple(r.get("allow", ())),
                deny=tuple(r.get("deny", ())),
                allow_with_shadow_deny=tuple(r.get("allowWithShadowDeny", ())),
            )
            for r in id_rules
        ),
    )
