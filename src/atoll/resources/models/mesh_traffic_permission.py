"""MeshTrafficPermission: which callers may reach the selected proxies.

``from[]{targetRef, default.action}`` (Allow, Deny, AllowWithShadowDeny per source) or the newer
``rules[]{default{allow, deny, allowWithShadowDeny: [{spiffeID}]}}`` matching callers by identity.
"""

from __future__ import annotations

from typing import Literal

from atoll.resources.base import Check, Spec, spec_check
from atoll.resources.models.common import SpiffeMatch
from atoll.resources.models.policy import InboundPolicySpec, PolicyItem, PolicyRule, register_policy
from atoll.resources.models.targetref import FROM_KINDS, TOP_KINDS, RefRules

Action = Literal["Allow", "Deny", "AllowWithShadowDeny"]


class FromConf(Spec):
    action: Action


From = PolicyItem[FromConf]


class RuleConf(Spec):
    allow: list[SpiffeMatch] | None = None
    deny: list[SpiffeMatch] | None = None
    allow_with_shadow_deny: list[SpiffeMatch] | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        check.one_of(self, "allow", "deny", "allow_with_shadow_deny")


Rule = PolicyRule[RuleConf]


class MeshTrafficPermissionSpec(InboundPolicySpec[From, Rule]):
    refs = RefRules(top=TOP_KINDS, from_=FROM_KINDS, rules=True)


MESH_TRAFFIC_PERMISSION = register_policy("MeshTrafficPermission", "meshtrafficpermissions", MeshTrafficPermissionSpec)
