"""MeshTrafficPermission -> Envoy RBAC on an inbound listener (pure).

Input: ``InboundView.permissions``, the permissions of one inbound ordered least to most specific
(``atoll.topology.matching``): a caller gets the action of the **last** permission whose source
tags it carries; no match means denied. A caller's tags are read from its client certificate's
URI SANs: ``kuma.io/service: S`` is ``spiffe://<mesh>/S`` and any other tag ``k: v`` is
``kuma://k/v``; a source without tags (targetRef Mesh) is any identity of the mesh
(``spiffe://<mesh>/`` prefix).

Construction (an ALLOW RBAC, i.e. "allowed iff some policy matches"): with items ``(T_i, a_i)``
in order, a caller with tags ``S`` is allowed iff

    OR over i with a_i allowing:  T_i ⊆ S  AND  NOT (OR over j > i with a_j denying: T_j ⊆ S)

This is exact: if the last matching item L allows, term L holds (nothing after L matches); if L
denies, every earlier allowing item that matches is cancelled by L. Items overridden by a later
item with the same source are dropped first. Each term becomes one named RBAC policy
(``<index>:<policy>``) with ``and_ids``/``or_ids``/``not_id`` principals over
``authenticated.principal_name`` (Envoy checks every URI SAN of the peer certificate).

MeshTrafficPermission ``rules[]`` (``IdentityRules``: SPIFFE ID matches, Exact or Prefix) come
first: a caller matching ``deny`` is denied whatever ``from[]`` says (every policy above gets
``AND NOT any-deny``), one matching ``allow``/``allowWithShadowDeny`` is allowed (policy
``rules:allow``), anyone else falls through to the ``from[]`` construction.

``Allow`` and ``AllowWithShadowDeny`` allow in the enforced ``rules``; when any item is
``AllowWithShadowDeny``, ``shadow_rules`` are built the same way with it counted as denying: the
shadow result is only logged in stats (``shadow_allowed``/``shadow_denied``), never enforced.

Filters: HTTP inbounds get the HTTP RBAC filter ahead of the router (a denied request gets
HTTP 403 and the connection stays usable); TCP inbounds get the network RBAC filter ahead of
tcp_proxy (a denied connection is closed on its first byte). Network RBAC for HTTP too would only
close connections, with no status code for the caller to see; Kuma makes the same choice.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.type.matcher.v3 import string_pb2

from atoll.topology import IdentityRules, Permission, spiffe_id
from atoll.topology.settings import NO_IDENTITY_RULES
from atoll.topology.tags import SERVICE_TAG
from atoll.xds.generate.envoy import pack

__all__ = [
    "HTTP_RBAC_FILTER",
    "NETWORK_RBAC_FILTER",
    "http_rbac_filter",
    "network_rbac_filter",
    "rbac_rules",
]

HTTP_RBAC_FILTER = "envoy.filters.http.rbac"
NETWORK_RBAC_FILTER = "envoy.filters.network.rbac"
_ALLOWING = {"enforced": frozenset(("Allow", "AllowWithShadowDeny")), "shadow": frozenset(("Allow",))}


def _uri(matcher: string_pb2.StringMatcher) -> rbac_pb2.Principal:
    return rbac_pb2.Principal(authenticated=rbac_pb2.Principal.Authenticated(principal_name=matcher))


def _source(mesh: str, perm: Permission) -> rbac_pb2.Principal:
    if not perm.source:
        return _uri(string_pb2.StringMatcher(prefix=f"spiffe://{mesh}/"))
    ids = [
        _uri(string_pb2.StringMatcher(exact=spiffe_id(mesh, v) if k == SERVICE_TAG else f"kuma://{k}/{v}"))
        for k, v in perm.source.items()
    ]
    if len(ids) == 1:
        return ids[0]
    return rbac_pb2.Principal(and_ids=rbac_pb2.Principal.Set(ids=ids))


def _effective(permissions: Sequence[Permission]) -> list[tuple[int, Permission]]:
    """Drop items a later item with the same source overrides entirely; keep original indexes."""
    out: list[tuple[int, Permission]] = []
    for i, p in enumerate(permissions):
        if not any(q.source == p.source for q in permissions[i + 1 :]):
            out.append((i, p))
    return out


def _spiffe(match: tuple[str, str]) -> rbac_pb2.Principal:
    kind, value = match
    return _uri(string_pb2.StringMatcher(prefix=value) if kind == "Prefix" else string_pb2.StringMatcher(exact=value))


def _any_of(principals: list[rbac_pb2.Principal]) -> rbac_pb2.Principal:
    return principals[0] if len(principals) == 1 else rbac_pb2.Principal(or_ids=rbac_pb2.Principal.Set(ids=principals))


def rbac_rules(
    mesh: str,
    permissions: Sequence[Permission],
    identity_rules: IdentityRules = NO_IDENTITY_RULES,
    *,
    shadow: bool = False,
) -> rbac_pb2.RBAC:
    """The ALLOW RBAC that gives every caller the action of its last matching permission, after
    ``identity_rules`` (``rules[]``: deny wins, then allow) had their say."""
    out = _from_rules(mesh, permissions, shadow=shadow)
    rules = identity_rules
    deny = list(rules.deny) + (list(rules.allow_with_shadow_deny) if shadow else [])
    allow = list(rules.allow) + ([] if shadow else list(rules.allow_with_shadow_deny))
    if allow:
        out.policies["rules:allow"].CopyFrom(
            rbac_pb2.Policy(
                permissions=[rbac_pb2.Permission(any=True)], principals=[_any_of([_spiffe(m) for m in allow])]
            )
        )
    if deny:
        not_denied = rbac_pb2.Principal(not_id=_any_of([_spiffe(m) for m in deny]))
        for policy in out.policies.values():
            (principal,) = policy.principals
            guarded = rbac_pb2.Principal(and_ids=rbac_pb2.Principal.Set(ids=[not_denied, principal]))
            del policy.principals[:]
            policy.principals.append(guarded)
    return out


def _from_rules(mesh: str, permissions: Sequence[Permission], *, shadow: bool) -> rbac_pb2.RBAC:
    allowing = _ALLOWING["shadow" if shadow else "enforced"]
    items = _effective(permissions)
    policies: dict[str, rbac_pb2.Policy] = {}
    for pos, (i, perm) in enumerate(items):
        if perm.action not in allowing:
            continue
        principal = _source(mesh, perm)
        later_denies = [_source(mesh, q) for _, q in items[pos + 1 :] if q.action not in allowing]
        if later_denies:
            denied = (
                later_denies[0]
                if len(later_denies) == 1
                else rbac_pb2.Principal(or_ids=rbac_pb2.Principal.Set(ids=later_denies))
            )
            principal = rbac_pb2.Principal(
                and_ids=rbac_pb2.Principal.Set(ids=[principal, rbac_pb2.Principal(not_id=denied)])
            )
        policies[f"{i}:{perm.policy}"] = rbac_pb2.Policy(
            permissions=[rbac_pb2.Permission(any=True)], principals=[principal]
        )
    return rbac_pb2.RBAC(action=rbac_pb2.RBAC.ALLOW, policies=policies)


def _has_shadow(permissions: Sequence[Permission], rules: IdentityRules) -> bool:
    return bool(rules.allow_with_shadow_deny) or any(p.action == "AllowWithShadowDeny" for p in permissions)


def http_rbac_filter(
    mesh: str, permissions: Sequence[Permission], identity_rules: IdentityRules = NO_IDENTITY_RULES
) -> hcm_pb2.HttpFilter:
    """The HTTP RBAC filter of an inbound HCM (denied requests get 403)."""
    config = http_rbac_pb2.RBAC(rules=rbac_rules(mesh, permissions, identity_rules))
    if _has_shadow(permissions, identity_rules):
        config.shadow_rules.CopyFrom(rbac_rules(mesh, permissions, identity_rules, shadow=True))
    return hcm_pb2.HttpFilter(name=HTTP_RBAC_FILTER, typed_config=pack(config))


def network_rbac_filter(
    mesh: str,
    permissions: Sequence[Permission],
    stat_prefix: str,
    identity_rules: IdentityRules = NO_IDENTITY_RULES,
) -> listener_components_pb2.Filter:
    """The network RBAC filter of a TCP inbound (denied connections are closed)."""
    config = network_rbac_pb2.RBAC(stat_prefix=f"{stat_prefix}.", rules=rbac_rules(mesh, permissions, identity_rules))
    if _has_shadow(permissions, identity_rules):
        config.shadow_rules.CopyFrom(rbac_rules(mesh, permissions, identity_rules, shadow=True))
    return listener_components_pb2.Filter(name=NETWORK_RBAC_FILTER, typed_config=pack(config))
