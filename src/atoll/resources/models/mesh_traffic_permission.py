"""MeshTrafficPermission: which callers may reach the selected proxies.

``from[]{targetRef, default.action}`` (Allow, Deny, AllowWithShadowDeny per source) or the newer
``rules[]{default{allow, deny, allowWithShadowDeny: [{spiffeID}]}}`` matching callers by identity.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ModelWrapValidatorHandler, model_validator

from atoll.resources.base import Check, Spec
from atoll.resources.models.common import SpiffeMatch, register_policy
from atoll.resources.models.targetref import TargetRef, section_field, validate_policy

Action = Literal["Allow", "Deny", "AllowWithShadowDeny"]


class FromConf(Spec):
    action: Action


class From(Spec):
    target_ref: TargetRef
    default: FromConf


class RuleConf(Spec):
    allow: list[SpiffeMatch] | None = None
    deny: list[SpiffeMatch] | None = None
    allow_with_shadow_deny: list[SpiffeMatch] | None = None

    @model_validator(mode="after")
    def _check(self) -> RuleConf:
        check = Check()
        if self.allow is None and self.deny is None and self.allow_with_shadow_deny is None:
            check.add("", "at least one of allow, deny, allowWithShadowDeny has to be defined")
        check.done()
        return self


class Rule(Spec):
    default: RuleConf


class MeshTrafficPermissionSpec(Spec):
    target_ref: TargetRef | None = None
    from_: list[From] | None = section_field()
    rules: list[Rule] | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _check(
        cls, data: Any, handler: ModelWrapValidatorHandler[MeshTrafficPermissionSpec]
    ) -> MeshTrafficPermissionSpec:
        return validate_policy(data, handler, "MeshTrafficPermission")


MESH_TRAFFIC_PERMISSION = register_policy("MeshTrafficPermission", "meshtrafficpermissions", MeshTrafficPermissionSpec)
