"""Why a proxy behaves as it does, and which proxies a policy reaches (pure): ``atoll inspect``.

``explain_proxy(dataplane, policies)`` answers, for each served inbound and each outbound of one
Dataplane, per policy kind: the items that apply (policy, section, the item's own ``targetRef`` and
its ``default``) in the order they merge (the last one wins field by field), and the settings they
fold into. ``policy_reach(policy, dataplanes, routes)`` answers, for one policy, the proxies it selects with
the inbounds and outbounds it contributes to. A Dataplane is matched under the name its zone knows
(``zone_name``), so a global CP's copy of a zone's Dataplane is explained as its zone CP serves it.

Both are built on ``atoll.topology.matching.collect_items``, the selection and ordering
``proxy_view`` uses, and each kind's items are folded by ``fold_items``, as for a proxy: the answer
cannot drift from what the generators are given (``tests/generate/test_explain.py`` checks each
inbound's and outbound's settings against ``proxy_view``'s). An outbound's ``routes`` explain the
rules of each MeshHTTPRoute that policies target (``targetRef.kind: MeshHTTPRoute``): the
outbound's items with theirs merged last. Settings are the typed values the generators read
(``atoll.topology.settings``), per kind; a kind no generator reads yet has ``settings`` None and
``enforced`` false (``atoll.topology.enforcement``). MeshTrafficPermission is per caller, not merged:
its settings are the inbound's permissions (the last matching one decides) and SPIFFE ID rules.

``to_json`` renders either answer as JSON data (camelCase keys, ``None`` left out), the form the
REST API serves and the CLI prints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic.alias_generators import to_camel

from atoll.resources.meta import Resource
from atoll.resources.models.dataplane import DataplaneSpec
from atoll.topology.enforcement import not_enforced_kinds
from atoll.topology.matching import (
    DISPLAY_NAME_LABEL,
    ORIGIN_LABEL,
    CollectedItems,
    Item,
    PolicyEntry,
    ProxyRefs,
    collect_items,
    fold_items,
    merge_order,
    permissions_of,
    sort_policies,
)
from atoll.topology.settings import PolicySettings
from atoll.topology.settings.traffic_permission import TRAFFIC_PERMISSION, IdentityRules, Permission, identity_rules
from atoll.topology.view import DEFAULT_OUTBOUND_ADDRESS

__all__ = [
    "Contribution",
    "KindExplanation",
    "PolicyName",
    "PolicyReach",
    "ProxyExplanation",
    "RouteExplanation",
    "TrafficExplanation",
    "TrafficPermissions",
    "explain_proxy",
    "policy_reach",
    "to_json",
    "zone_name",
]

Section = Literal["to", "from", "rules"]


@dataclass(frozen=True, slots=True)
class Contribution:
    """One policy item that applies: its policy, section, own ``targetRef`` (none for ``rules[]``)
    and ``default`` block, as written."""

    policy: str
    section: Section
    target_ref: Mapping[str, Any] | None
    default: Mapping[str, Any]
    rules: tuple[Mapping[str, Any], ...] | None = None
    """A route's ``to[].rules`` (routes have rules where other kinds have ``default``)."""


@dataclass(frozen=True, slots=True)
class TrafficPermissions:
    """MeshTrafficPermission on one inbound: ``from[]`` permissions least to most specific (a caller
    gets the last one whose tags it has), then SPIFFE ID rules (checked first)."""

    permissions: tuple[Permission, ...]
    identity_rules: IdentityRules


@dataclass(frozen=True, slots=True)
class KindExplanation:
    """One policy kind on one inbound or outbound: the contributions in merge order and the result."""

    kind: str
    contributions: tuple[Contribution, ...]
    settings: Any
    """The typed settings (``None``: no generator reads this kind)."""
    enforced: bool


@dataclass(frozen=True, slots=True)
class RouteExplanation:
    """The rules of one MeshHTTPRoute on an outbound, where policies target that route: the
    outbound's items with those policies' ``to[]`` items merged last, per kind."""

    route: str
    kinds: tuple[KindExplanation, ...]


@dataclass(frozen=True, slots=True)
class TrafficExplanation:
    """One inbound (``service`` on ``address:port``) or outbound (``service`` at ``address:port``)."""

    direction: Literal["inbound", "outbound"]
    service: str
    port: int
    address: str
    kinds: tuple[KindExplanation, ...]
    routes: tuple[RouteExplanation, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyName:
    type: str
    name: str


@dataclass(frozen=True, slots=True)
class ProxyExplanation:
    mesh: str
    dataplane: str
    policies: tuple[PolicyName, ...]
    """(type, name) of every policy selecting the proxy or one of its inbounds, in policy order."""
    inbounds: tuple[TrafficExplanation, ...]
    outbounds: tuple[TrafficExplanation, ...]


@dataclass(frozen=True, slots=True)
class PolicyReach:
    """One proxy a policy selects, and where its items apply (inbounds as ``service:port``,
    outbounds as ``service``)."""

    dataplane: str
    zone: str | None
    inbounds: tuple[str, ...]
    outbounds: tuple[str, ...]


def _contribution(item: Mapping[str, Any], name: str, section: Section) -> Contribution:
    ref = item.get("targetRef")
    return Contribution(
        policy=name,
        section=section,
        target_ref=ref if isinstance(ref, Mapping) else None,
        default=item.get("default") or {},
        rules=tuple(item["rules"]) if section == "to" and item.get("rules") else None,
    )


def _setting(settings: PolicySettings) -> Any:
    """The one kind's settings ``fold_settings`` set (None when it folds no such kind)."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if not f.name.startswith("_") and value is not None:
            return value
    return None


def _merged_kinds(items: Sequence[Item], section: Section | None) -> list[KindExplanation]:
    """Per kind (in order of first appearance), the items in merge order and their settings."""
    unenforced = not_enforced_kinds()
    by_kind: dict[str, list[Item]] = {}
    for it in merge_order(items):
        by_kind.setdefault(it[0], []).append(it)
    out = []
    for kind, kind_items in by_kind.items():
        contributions = tuple(
            _contribution(item, name, section or ("from" if "targetRef" in item else "rules"))
            for _, _, item, name in kind_items
        )
        settings = _setting(fold_items(kind_items))
        out.append(KindExplanation(kind, contributions, settings, kind not in unenforced and settings is not None))
    return out


def _permission_kind(
    perms: Sequence[tuple[Mapping[str, Any], str]], rules: Sequence[tuple[Mapping[str, Any], str]]
) -> list[KindExplanation]:
    if not perms and not rules:
        return []
    contributions = tuple(
        [_contribution(item, name, "from") for item, name in perms]
        + [_contribution(item, name, "rules") for item, name in rules]
    )
    settings = TrafficPermissions(permissions_of(perms), identity_rules(item for item, _ in rules))
    return [KindExplanation(TRAFFIC_PERMISSION, contributions, settings, True)]


def zone_name(dataplane: Resource[DataplaneSpec]) -> str:
    """The name a Dataplane has in its zone, which ``Dataplane`` targetRefs name: a global CP holds a
    zone's Dataplane under another name (``web-1-<hash>``) and keeps the zone's in a label."""
    labels = dataplane.meta.labels
    if labels.get(ORIGIN_LABEL) == "zone" and labels.get(DISPLAY_NAME_LABEL):
        return labels[DISPLAY_NAME_LABEL]
    return dataplane.name


def explain_proxy(dataplane: Resource[DataplaneSpec], policies: Sequence[PolicyEntry]) -> ProxyExplanation:
    """What ``policies`` (ordered by ``sort_policies``) do to each inbound and outbound of ``dataplane``."""
    refs = ProxyRefs.of(dataplane)
    found: CollectedItems = collect_items(
        policies,
        dataplane=zone_name(dataplane),
        labels=dataplane.meta.labels,
        inbounds=refs.inbounds,
        outbounds=refs.outbounds,
    )
    net = dataplane.spec.networking
    inbounds = tuple(
        TrafficExplanation(
            direction="inbound",
            service=ib.service,
            port=int(ib.port or 0),
            address=ib.address or net.address,
            kinds=tuple(
                _merged_kinds(found.inbounds[i], None) + _permission_kind(found.permissions[i], found.identity_rules[i])
            ),
        )
        for i, ib in enumerate(refs.served)
    )
    outbounds = tuple(
        TrafficExplanation(
            direction="outbound",
            service=ob.service,
            port=ob.port,
            address=ob.address or DEFAULT_OUTBOUND_ADDRESS,
            kinds=tuple(_merged_kinds(found.outbounds[i], "to")),
            routes=tuple(
                RouteExplanation(name, tuple(_merged_kinds(found.outbounds[i] + extra, "to")))
                for name, extra in found.routes[i]
            ),
        )
        for i, ob in enumerate(net.outbound)
    )
    return ProxyExplanation(
        mesh=dataplane.mesh or "",
        dataplane=dataplane.name,
        policies=tuple(PolicyName(t, n) for t, n in found.names),
        inbounds=inbounds,
        outbounds=outbounds,
    )


def policy_reach(
    policy: Resource[Any], dataplanes: Iterable[Resource[DataplaneSpec]], routes: Iterable[Resource[Any]] = ()
) -> list[PolicyReach]:
    """The Dataplanes (of ``policy``'s mesh) that ``policy`` selects, by name. ``routes``: the mesh's
    MeshHTTPRoutes, which a policy may target (``targetRef.kind: MeshHTTPRoute``)."""
    entries = sort_policies([policy, *(r for r in routes if (r.type, r.name) != (policy.type, policy.name))])
    key = (policy.type, policy.name)

    def mine(items: Iterable[Item]) -> bool:
        return any((kind, name) == key for kind, _, _, name in items)

    def mine_by_caller(items: Iterable[tuple[Mapping[str, Any], str]]) -> bool:
        return policy.type == TRAFFIC_PERMISSION and any(name == policy.name for _, name in items)

    out = []
    for dp in sorted(dataplanes, key=lambda d: d.name):
        refs = ProxyRefs.of(dp)
        found = collect_items(
            entries, dataplane=zone_name(dp), labels=dp.meta.labels, inbounds=refs.inbounds, outbounds=refs.outbounds
        )
        if key not in found.names:
            continue
        inbounds = tuple(
            f"{ib.service}:{ib.port}"
            for i, ib in enumerate(refs.served)
            if mine(found.inbounds[i])
            or mine_by_caller(found.permissions[i])
            or mine_by_caller(found.identity_rules[i])
        )
        outbounds = tuple(
            service
            for i, (service, _) in enumerate(refs.outbounds)
            if mine(found.outbounds[i]) or any(mine(extra) for _, extra in found.routes[i])
        )
        out.append(PolicyReach(dp.name, dp.meta.labels.get("kuma.io/zone"), inbounds, outbounds))
    return out


def to_json(value: Any) -> Any:
    """An explanation (or any part of one) as JSON data: dataclasses as objects with camelCase keys
    (``None`` fields left out), mappings as objects, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            to_camel(f.name): to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.name.startswith("_") and getattr(value, f.name) is not None
        }
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    return value
