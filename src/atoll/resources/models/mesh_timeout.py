"""MeshTimeout: connection, idle and HTTP timeouts for outbound (``to``) and inbound (``from``,
``rules``) traffic. Every timeout is a duration (``5s``, ``1m30s``, ``0s`` disables)."""

from __future__ import annotations

from typing import Any

from pydantic import ModelWrapValidatorHandler, model_validator

from atoll.resources.base import Check, Duration, Spec
from atoll.resources.models.common import register_policy
from atoll.resources.models.targetref import TargetRef, section_field, validate_policy


class Http(Spec):
    request_timeout: Duration | None = None
    stream_idle_timeout: Duration | None = None
    max_stream_duration: Duration | None = None
    max_connection_duration: Duration | None = None
    request_headers_timeout: Duration | None = None


class Conf(Spec):
    connection_timeout: Duration | None = None
    idle_timeout: Duration | None = None
    http: Http | None = None

    @model_validator(mode="after")
    def _check(self) -> Conf:
        check = Check()
        if not self.model_fields_set:
            check.add("", "at least one timeout has to be defined")
        check.done()
        return self


class To(Spec):
    target_ref: TargetRef
    default: Conf


class From(Spec):
    target_ref: TargetRef
    default: Conf


class Rule(Spec):
    default: Conf


class MeshTimeoutSpec(Spec):
    target_ref: TargetRef | None = None
    to: list[To] | None = None
    from_: list[From] | None = section_field()
    rules: list[Rule] | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, data: Any, handler: ModelWrapValidatorHandler[MeshTimeoutSpec]) -> MeshTimeoutSpec:
        return validate_policy(data, handler, "MeshTimeout")


MESH_TIMEOUT = register_policy("MeshTimeout", "meshtimeouts", MeshTimeoutSpec)
