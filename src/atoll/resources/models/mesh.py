"""Mesh: an isolated service mesh; its mTLS backends, routing and networking settings.

Universal form (spec flattened). ``mtls.enabledBackend`` must name one of ``mtls.backends``; zone
egress routing needs mTLS (as Kuma requires).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from atoll.resources.base import Duration, Spec
from atoll.resources.types import ResourceType, Scope, register


class Rotation(Spec):
    expiration: Duration | None = None


class DpCert(Spec):
    rotation: Rotation | None = None


class CaCert(Spec):
    rsa_bits: int | None = Field(default=None, alias="RSAbits", ge=2048, le=8192)
    expiration: Duration | None = None


class BuiltinConf(Spec):
    ca_cert: CaCert | None = None


class MtlsBackend(Spec):
    name: str
    type: str
    mode: str | None = None
    dp_cert: DpCert | None = None
    conf: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> MtlsBackend:
        if self.type not in ("builtin", "provided"):
            raise ValueError(f'type: unknown CA backend type "{self.type}"; supported: builtin, provided')
        if self.mode is not None and self.mode not in ("STRICT", "PERMISSIVE"):
            raise ValueError(f'mode: must be STRICT or PERMISSIVE, got "{self.mode}"')
        if self.type == "builtin" and self.conf is not None:
            BuiltinConf.model_validate(self.conf)
        if self.type == "provided":
            conf = self.conf or {}
            if "cert" not in conf or "key" not in conf:
                raise ValueError("conf: cert and key have to be defined for a provided CA")
        return self

    @property
    def builtin_conf(self) -> BuiltinConf:
        return BuiltinConf.model_validate(self.conf or {})


class Mtls(Spec):
    enabled_backend: str | None = None
    backends: list[MtlsBackend] = Field(default_factory=list)
    skip_validation: bool | None = None

    @model_validator(mode="after")
    def _check(self) -> Mtls:
        names = [b.name for b in self.backends]
        if len(set(names)) != len(names):
            raise ValueError("backends: backend names must be unique")
        if self.enabled_backend and self.enabled_backend not in names:
            raise ValueError(f'enabledBackend: "{self.enabled_backend}" is not one of the backends')
        return self

    def enabled(self) -> MtlsBackend | None:
        for b in self.backends:
            if b.name == self.enabled_backend:
                return b
        return None


class Routing(Spec):
    locality_aware_load_balancing: bool | None = None
    zone_egress: bool | None = None
    default_forbid_mesh_external_service_access: bool | None = None


class Outbound(Spec):
    passthrough: bool | None = None


class MeshNetworking(Spec):
    outbound: Outbound | None = None


class MeshSpec(Spec):
    mtls: Mtls | None = None
    routing: Routing | None = None
    networking: MeshNetworking | None = None
    skip_creating_initial_policies: list[str] | None = None
    # TODO(helper): type these blocks fully (constraints, logging, metrics, tracing, meshServices).
    constraints: dict[str, Any] | None = None
    logging: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    tracing: dict[str, Any] | None = None
    mesh_services: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _egress_needs_mtls(self) -> MeshSpec:
        if self.routing and self.routing.zone_egress and not (self.mtls and self.mtls.enabled_backend):
            raise ValueError("mtls: has to be set when routing.zoneEgress is enabled")
        return self


MESH = register(
    ResourceType(name="Mesh", spec_model=MeshSpec, scope=Scope.GLOBAL, flattened=True, plural="meshes")
)
