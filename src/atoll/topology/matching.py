"""Which ``Mesh*`` policies apply to a proxy, and the settings they fold into (pure).

Generic for every policy kind; the policies are read in their JSON form (``Resource.spec_dict``:
camelCase, only the fields the user set), frozen once per mesh view (``PolicyEntry``). The rules
follow Kuma's:

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
   targetRef kind (a ``rules[]`` item counts as ``Mesh``), and their ``default`` blocks handed per
   kind to ``atoll.topology.settings.fold_settings``, which merges them with RFC 7396 merge patch
   (the later, more specific one wins field by field) into typed ``PolicySettings``. For the kinds
   whose settings depend on the caller (``BY_SOURCE_KINDS``: MeshFaultInjection) the ``from[]``
   items of every source kind are taken too, and every item is handed over whole (a ``rules[]``
   item with its ``matches``: callers by SPIFFE ID).
4. **MeshTrafficPermission** is per caller, not per inbound: ``permissions`` lists one ``Permission``
   per ``from[]`` item (``atoll.topology.settings.traffic_permission``), in the same least-to-most
   specific order: a caller gets the action of the **last** permission whose tags it has; no
   permission matching means denied. Its ``rules[]`` (callers by SPIFFE ID) are collected per
   inbound into ``IdentityRules``: the lists of all applicable policies appended, deny before allow.

5. **Routes**: MeshHTTPRoute/MeshTCPRoute ``to[]`` items fold whole (their ``rules[]``, see
   ``settings.routes``), not their ``default``. A policy whose top-level targetRef is a
   ``MeshHTTPRoute`` applies where that route selects the proxy, to the outbounds the route matches:
   per route, the outbound's items with its ``to[]`` items folded last (``MatchedPolicies.routes``),
   which the generator puts on that route's rules only.

``collect_items`` does the selection for one proxy (which item of which policy applies where, in
policy order), ``match_policies`` then folds; inspection (``atoll.topology.explain``) reads the same
``collect_items`` and folds with the same ``fold_items``, so what it shows is what the generators get.

Results are frozen values (``PolicySettings``, tuples, ``Tags``) so views stay hashable and
comparable. Folding is memoized (``_FOLD_MEMO``): proxies reaching a service under the same
policies share one ``PolicySettings``, folded once per mesh view. ``match_policies`` is memoized too
(``_MATCH_MEMO``), per policy tuple and proxy shape (inbounds and outbounds; name and labels only when
a policy selects a ``Dataplane``): a mesh-wide policy change selects and folds once per shape.
``ProxyRefs`` (what selection reads of a Dataplane) lives in ``atoll.topology.proxy_refs``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atoll.resources.meta import Resource
from atoll.topology.proxy_refs import InboundRef, ProxyRefs
from atoll.topology.settings import BY_SOURCE_KINDS, NO_SETTINGS, PolicySettings, fold_settings
from atoll.topology.settings.conf import Conf, freeze
from atoll.topology.settings.routes import ROUTE_ORIGIN
from atoll.topology.settings.traffic_permission import (
    TRAFFIC_PERMISSION,
    IdentityRules,
    Permission,
    identity_rules,
    permission,
)
from atoll.topology.tags import SERVICE_TAG

__all__ = [
    "DISPLAY_NAME_LABEL",
    "KIND_ORDER",
    "ORIGIN_LABEL",
    "CollectedItems",
    "InboundRef",
    "Item",
    "MatchedPolicies",
    "PolicyEntry",
    "ProxyRefs",
    "collect_items",
    "fold_items",
    "match_policies",
    "merge_order",
    "permissions_of",
    "selects",
    "sort_policies",
]

ORIGIN_LABEL = "kuma.io/origin"
DISPLAY_NAME_LABEL = "kuma.io/display-name"
"""On a global CP's copy of a zone's resource: the name the zone knows it by (see ``atoll.kds.names``)."""
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
ROUTE_KINDS = frozenset(("MeshHTTPRoute", "MeshTCPRoute"))
"""Kinds whose ``to[]`` items carry ``rules[]`` rather than a ``default`` block."""
_ROUTE_TARGETED_RANK = 100
"""Items of policies targeting a MeshHTTPRoute fold after every ``to[]`` item of the outbound."""
_MESH_REF: Mapping[str, Any] = Conf({"kind": "Mesh"})
_MESH_RANK = KIND_ORDER["Mesh"]


@dataclass(frozen=True, slots=True)
class MatchedPolicies:
    """``match_policies``' result: the names of the policies selecting the proxy, and per outbound /
    per inbound (in the order given) the folded settings and the permissions."""

    names: tuple[tuple[str, str], ...]
    outbounds: tuple[PolicySettings, ...]
    inbounds: tuple[PolicySettings, ...]
    permissions: tuple[tuple[Permission, ...], ...]
    identity_rules: tuple[IdentityRules, ...] = ()
    routes: tuple[tuple[tuple[str, PolicySettings], ...], ...] = ()
    """Per outbound: (MeshHTTPRoute name, the outbound's settings with the ``to[]`` items of the policies
    targeting that route folded last) for every route that such policies target."""


@dataclass(frozen=True, slots=True)
class PolicyEntry:
    """One policy as matching reads it: its type, name and spec as frozen JSON data (camelCase)."""

    type: str
    name: str
    spec: Conf
    to: tuple[Mapping[str, Any], ...] = ()
    """The ``to[]`` items; a MeshHTTPRoute's carry its name under ``ROUTE_ORIGIN`` (so that its rules
    know which route they belong to, for the policies that target a MeshHTTPRoute)."""

    @classmethod
    def of(cls, policy: Resource[Any]) -> PolicyEntry:
        spec = freeze(policy.spec_dict())
        to: tuple[Mapping[str, Any], ...] = spec.get("to") or ()
        if policy.type == "MeshHTTPRoute":
            to = tuple(Conf({**item, ROUTE_ORIGIN: policy.name}) for item in to)
        return cls(type=policy.type, name=policy.name, spec=spec, to=to)


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


def _item_rank(item: Mapping[str, Any]) -> int:
    ref = item.get("targetRef")
    return KIND_ORDER.get(str(ref.get("kind")), 0) if isinstance(ref, Mapping) else 0


Item = tuple[str, int, Mapping[str, Any], str]
"""(policy kind, rank of the item's own targetRef, the item, the policy's name): one applicable item."""

# Memo of ``fold_items``: proxies reaching the same service under the same policies fold the same items, so
# the merge is done once per mesh view, not once per proxy (it was most of a proxy's generation time).
# Keyed by the identity of the items; an entry holds the items themselves, so an id cannot be reused
# by another object while its entry exists. Bounded: cleared when it grows past ``_FOLD_MEMO_MAX``.
_FOLD_MEMO: dict[tuple[tuple[str, int], ...], tuple[tuple[Mapping[str, Any], ...], PolicySettings]] = {}
_FOLD_MEMO_MAX = 20_000


def merge_order(items: Iterable[Item]) -> list[Item]:
    """``items`` (in policy order) in the order their ``default`` blocks merge: sorted, stably, by the
    rank of the item's own targetRef (the last one wins)."""
    return sorted(items, key=lambda it: it[1])


def fold_items(items: Sequence[Item]) -> PolicySettings:
    """The settings of applicable items (already in policy order)."""
    if not items:
        return NO_SETTINGS
    key = tuple((kind, id(item)) for kind, _, item, _ in items)
    hit = _FOLD_MEMO.get(key)
    if hit is not None:
        return hit[1]
    defaults: dict[str, list[Mapping[str, Any]]] = {}
    for kind, _, item, _ in merge_order(items):
        # Routes fold their whole to[] items (their rules); by-source kinds their whole from[] items.
        whole = kind in ROUTE_KINDS or kind in BY_SOURCE_KINDS
        defaults.setdefault(kind, []).append(item if whole else item.get("default") or {})
    settings = fold_settings(defaults)
    if len(_FOLD_MEMO) >= _FOLD_MEMO_MAX:
        _FOLD_MEMO.clear()
    _FOLD_MEMO[key] = (tuple(item for _, _, item, _ in items), settings)
    return settings


def permissions_of(items: Iterable[tuple[Mapping[str, Any], str]]) -> tuple[Permission, ...]:
    """The ``from[]`` items of MeshTrafficPermissions (with their policy's name) as permissions,
    sorted (stably) by the item's own targetRef kind."""
    perms = (permission(item, name) for item, name in sorted(items, key=lambda it: _item_rank(it[0])))
    return tuple(p for p in perms if p is not None)


@dataclass(frozen=True, slots=True)
class CollectedItems:
    """``collect_items``' result: what of each policy applies where, before folding. Per outbound /
    per inbound (in the order given) the (kind, rank, item, policy name) of the merged kinds, in
    policy order; per inbound the MeshTrafficPermission ``from[]`` and ``rules[]`` items with their
    policy's name."""

    names: tuple[tuple[str, str], ...]
    outbounds: tuple[tuple[Item, ...], ...]
    inbounds: tuple[tuple[Item, ...], ...]
    permissions: tuple[tuple[tuple[Mapping[str, Any], str], ...], ...]
    identity_rules: tuple[tuple[tuple[Mapping[str, Any], str], ...], ...]
    routes: tuple[tuple[tuple[str, tuple[Item, ...]], ...], ...]
    """Per outbound: (MeshHTTPRoute name, the items of the policies targeting that route), by name."""


def collect_items(
    policies: Sequence[PolicyEntry],
    *,
    dataplane: str,
    labels: Mapping[str, str],
    inbounds: Sequence[InboundRef],
    outbounds: Sequence[tuple[str, Mapping[str, str]]],
) -> CollectedItems:
    """Which items of ``policies`` (already ordered by ``sort_policies``) apply to each inbound and
    outbound (as (service, tags)) of one proxy: selection, the first half of ``match_policies``, and
    what inspection (``atoll.topology.explain``) reads so it cannot drift from what Envoy gets."""
    names: list[tuple[str, str]] = []
    to_items: list[list[Item]] = [[] for _ in outbounds]
    in_items: list[list[Item]] = [[] for _ in inbounds]
    perm_items: list[list[tuple[Mapping[str, Any], str]]] = [[] for _ in inbounds]
    rule_items: list[list[tuple[Mapping[str, Any], str]]] = [[] for _ in inbounds]
    by_route: list[dict[str, list[Item]]] = [{} for _ in outbounds]
    http_routes = {p.name: p for p in policies if p.type == "MeshHTTPRoute"}
    for policy in policies:
        spec = policy.spec
        top = _top_ref(spec)
        if top.get("kind") == "MeshHTTPRoute":
            route = http_routes.get(str(top.get("name")))
            if route is not None and selects(_top_ref(route.spec), dataplane, labels, inbounds)[0]:
                names.append((policy.type, policy.name))
                _route_targeted(policy, route, outbounds, by_route)
            continue
        proxy, chosen = selects(top, dataplane, labels, inbounds)
        if not proxy and not chosen:
            continue
        names.append((policy.type, policy.name))
        permits = policy.type == TRAFFIC_PERMISSION
        if proxy:
            for item in policy.to:
                rank = _item_rank(item)
                for i, (service, tags) in enumerate(outbounds):
                    if _to_matches(item.get("targetRef") or {}, service, tags):
                        to_items[i].append((policy.type, rank, item, policy.name))
        for i in sorted(chosen):
            for item in spec.get("from") or ():
                if permits:
                    perm_items[i].append((item, policy.name))
                elif (item.get("targetRef") or {}).get("kind") == "Mesh":
                    in_items[i].append((policy.type, _MESH_RANK, item, policy.name))
                elif policy.type in BY_SOURCE_KINDS:
                    in_items[i].append((policy.type, _item_rank(item), item, policy.name))
            for item in spec.get("rules") or ():
                if permits:
                    rule_items[i].append((item, policy.name))
                else:
                    in_items[i].append((policy.type, _MESH_RANK, item, policy.name))
    return CollectedItems(
        names=tuple(names),
        outbounds=tuple(tuple(items) for items in to_items),
        inbounds=tuple(tuple(items) for items in in_items),
        permissions=tuple(tuple(items) for items in perm_items),
        identity_rules=tuple(tuple(items) for items in rule_items),
        routes=tuple(
            tuple((name, tuple(extra)) for name, extra in sorted(by_route[i].items())) for i in range(len(outbounds))
        ),
    )


# Memo of ``match_policies`` per policy set (the ordered tuple of a mesh view, by identity; the entry
# holds it, so the id is not reused while the entry lives) and per proxy *shape*: what selection reads
# of a proxy. Proxies with the same inbounds and outbounds get the same result, so a mesh-wide policy
# change selects and folds once per shape, not once per proxy. The name and labels are part of the shape
# only when a policy of the set selects by them (a ``Dataplane`` top-level targetRef). Bounded: at most
# ``_MATCH_SETS_MAX`` sets, the oldest dropped when a new one would pass that or the older ones hold
# ``_MATCH_ENTRIES_MAX`` shapes in all; a set is cleared past ``_MATCH_ENTRIES_MAX`` shapes itself.
_MatchSet = tuple[tuple[PolicyEntry, ...], bool, dict[tuple[Any, ...], MatchedPolicies]]
_MATCH_MEMO: dict[int, _MatchSet] = {}
_MATCH_SETS_MAX = 16
_MATCH_ENTRIES_MAX = 20_000


def _match_set(policies: tuple[PolicyEntry, ...]) -> _MatchSet:
    found = _MATCH_MEMO.get(id(policies))
    if found is not None and found[0] is policies:
        return found
    while _MATCH_MEMO and (
        len(_MATCH_MEMO) >= _MATCH_SETS_MAX or sum(len(r) for _, _, r in _MATCH_MEMO.values()) >= _MATCH_ENTRIES_MAX
    ):
        del _MATCH_MEMO[next(iter(_MATCH_MEMO))]
    by_identity = any(_top_ref(p.spec).get("kind") == "Dataplane" for p in policies)
    entry: _MatchSet = (policies, by_identity, {})
    _MATCH_MEMO[id(policies)] = entry
    return entry


_SHAPES: dict[tuple[int, int], tuple[Sequence[InboundRef], Sequence[Any], tuple[Any, ...]]] = {}


def _shape(inbounds: Sequence[InboundRef], outbounds: Sequence[tuple[str, Mapping[str, str]]]) -> tuple[Any, ...]:
    """The hashable shape of a proxy's refs; remembered for tuples (``ProxyRefs`` keeps its tuples from
    one mesh view to the next, so the usual call builds nothing)."""
    hit = _SHAPES.get((id(inbounds), id(outbounds)))
    if hit is not None and hit[0] is inbounds and hit[1] is outbounds:
        return hit[2]
    shape = (tuple(inbounds), tuple((service, tuple(tags.items())) for service, tags in outbounds))
    if isinstance(inbounds, tuple) and isinstance(outbounds, tuple):
        if len(_SHAPES) >= _MATCH_ENTRIES_MAX:
            _SHAPES.clear()
        _SHAPES[(id(inbounds), id(outbounds))] = (inbounds, outbounds, shape)  # held: ids stay unique
    return shape


def match_policies(
    policies: Sequence[PolicyEntry],
    *,
    dataplane: str,
    labels: Mapping[str, str],
    inbounds: Sequence[InboundRef],
    outbounds: Sequence[tuple[str, Mapping[str, str]]],
) -> MatchedPolicies:
    """Apply ``policies`` (already ordered by ``sort_policies``) to one proxy: its ``inbounds`` and its
    ``outbounds`` as (service, tags). Memoized per policy tuple and proxy shape (``_MATCH_MEMO``)."""
    if not isinstance(policies, tuple):
        return _match(policies, dataplane=dataplane, labels=labels, inbounds=inbounds, outbounds=outbounds)
    _, by_identity, results = _match_set(policies)
    key = (_shape(inbounds, outbounds), (dataplane, tuple(sorted(labels.items()))) if by_identity else None)
    hit = results.get(key)
    if hit is None:
        hit = _match(policies, dataplane=dataplane, labels=labels, inbounds=inbounds, outbounds=outbounds)
        if len(results) >= _MATCH_ENTRIES_MAX:
            results.clear()
        results[key] = hit
    return hit


def _match(
    policies: Sequence[PolicyEntry],
    *,
    dataplane: str,
    labels: Mapping[str, str],
    inbounds: Sequence[InboundRef],
    outbounds: Sequence[tuple[str, Mapping[str, str]]],
) -> MatchedPolicies:
    found = collect_items(policies, dataplane=dataplane, labels=labels, inbounds=inbounds, outbounds=outbounds)
    return MatchedPolicies(
        names=found.names,
        outbounds=tuple(fold_items(items) for items in found.outbounds),
        inbounds=tuple(fold_items(items) for items in found.inbounds),
        permissions=tuple(permissions_of(items) for items in found.permissions),
        identity_rules=tuple(identity_rules(item for item, _ in items) for items in found.identity_rules),
        routes=tuple(
            tuple((name, fold_items(found.outbounds[i] + extra)) for name, extra in routes)
            for i, routes in enumerate(found.routes)
        ),
    )


def _route_targeted(
    policy: PolicyEntry,
    route: PolicyEntry,
    outbounds: Sequence[tuple[str, Mapping[str, str]]],
    by_route: list[dict[str, list[Item]]],
) -> None:
    """Collect the ``to[]`` items of ``policy`` (whose top targetRef is MeshHTTPRoute ``route``) for the
    outbounds the route applies to."""
    for i, (service, tags) in enumerate(outbounds):
        if not any(_to_matches(r.get("targetRef") or {}, service, tags) for r in route.to):
            continue
        for item in policy.to:
            if _to_matches(item.get("targetRef") or {}, service, tags):
                by_route[i].setdefault(route.name, []).append((policy.type, _ROUTE_TARGETED_RANK, item, policy.name))
