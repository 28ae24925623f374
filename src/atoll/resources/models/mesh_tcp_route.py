"""MeshTCPRoute: weighted TCP backends for outbound traffic: ``to[]{targetRef, rules[{default{backendRefs}}]}``."""

from __future__ import annotations

from pydantic import Field

from atoll.resources.base import Spec
from atoll.resources.models.common import BackendRef
from atoll.resources.models.policy import PolicyRule, TargetItem, ToPolicySpec, register_policy
from atoll.resources.models.targetref import TO_KINDS, TOP_KINDS_GW, RefRules


class RuleConf(Spec):
    backend_refs: list[BackendRef] = Field(min_length=1)


Rule = PolicyRule[RuleConf]


class To(TargetItem):
    rules: list[Rule] = Field(min_length=1, max_length=1)


class MeshTCPRouteSpec(ToPolicySpec[To]):
    refs = RefRules(top=TOP_KINDS_GW, to=TO_KINDS, gateway_tags=True)


MESH_TCP_ROUTE = register_policy("MeshTCPRoute", "meshtcproutes", MeshTCPRouteSpec)
