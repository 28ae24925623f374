"""MeshTCPRoute: weighted TCP backends for outbound traffic: ``to[]{targetRef, rules[{default{backendRefs}}]}``."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ModelWrapValidatorHandler, model_validator

from atoll.resources.base import Spec
from atoll.resources.models.common import BackendRef, register_policy
from atoll.resources.models.targetref import TargetRef, validate_policy


class RuleConf(Spec):
    backend_refs: list[BackendRef] = Field(min_length=1)


class Rule(Spec):
    default: RuleConf


class To(Spec):
    target_ref: TargetRef
    rules: list[Rule] = Field(min_length=1, max_length=1)


class MeshTCPRouteSpec(Spec):
    target_ref: TargetRef | None = None
    to: list[To] | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, data: Any, handler: ModelWrapValidatorHandler[MeshTCPRouteSpec]) -> MeshTCPRouteSpec:
        return validate_policy(data, handler, "MeshTCPRoute")


MESH_TCP_ROUTE = register_policy("MeshTCPRoute", "meshtcproutes", MeshTCPRouteSpec)
