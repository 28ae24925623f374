"""MeshAccessLog: where proxies write access logs — File, Tcp or OpenTelemetry backends.

A backend's ``type`` names the one block it must carry (``File`` -> ``file``). ``format`` is Plain
(a template string) or Json (key/value pairs). An OpenTelemetry ``body`` is free-form JSON and is
kept exactly as written.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from atoll.resources.base import Check, HostPort, Spec, Tags, spec_check
from atoll.resources.models.policy import ConfPolicySpec, register_policy
from atoll.resources.models.targetref import TO_KINDS, TOP_KINDS_GW, RefRules


class JsonValue(Spec):
    key: str = Field(min_length=1)
    value: str


class Format(Spec):
    type: Literal["Plain", "Json"]
    plain: str | None = None
    json_: list[JsonValue] | None = Field(default=None, alias="json")
    omit_empty_values: bool | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if self.type == "Plain":
            if self.plain is None:
                check.add("plain", "required with type Plain")
            if self.json_ is not None:
                check.add("json", "must not be set with type Plain")
        else:
            if not self.json_:
                check.add("json", "required with type Json")
            if self.plain is not None:
                check.add("plain", "must not be set with type Json")


class FileBackend(Spec):
    path: str = Field(min_length=1)
    format: Format | None = None


class TcpBackend(Spec):
    address: HostPort
    format: Format | None = None


class OtelBackendRef(Spec):
    kind: Literal["MeshOpenTelemetryBackend"]
    name: str | None = None
    labels: Tags | None = None


class OtelBackend(Spec):
    endpoint: str | None = None
    backend_ref: OtelBackendRef | None = None
    body: Any = None
    attributes: list[JsonValue] | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if (self.endpoint is None) == (self.backend_ref is None):
            check.add("endpoint", "exactly one of endpoint, backendRef has to be defined")


_BLOCK = {"File": ("file", "file"), "Tcp": ("tcp", "tcp"), "OpenTelemetry": ("open_telemetry", "openTelemetry")}


class Backend(Spec):
    type: Literal["File", "Tcp", "OpenTelemetry"]
    file: FileBackend | None = None
    tcp: TcpBackend | None = None
    open_telemetry: OtelBackend | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        for t, (attr, alias) in _BLOCK.items():
            value = getattr(self, attr)
            if t == self.type and value is None:
                check.add(alias, f"required with type {self.type}")
            if t != self.type and value is not None:
                check.add(alias, f"must not be set with type {self.type}")


class Conf(Spec):
    backends: list[Backend] | None = None


class MeshAccessLogSpec(ConfPolicySpec[Conf]):
    refs = RefRules(top=TOP_KINDS_GW, to=TO_KINDS, from_=("Mesh",), rules=True, gateway_tags=True)


MESH_ACCESS_LOG = register_policy("MeshAccessLog", "meshaccesslogs", MeshAccessLogSpec)
