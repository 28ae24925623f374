"""Dataplane: one data plane proxy (a sidecar) and the services it serves and reaches.

Universal form (spec flattened): ``networking{address, advertisedAddress, inbound[], outbound[],
transparentProxying, admin, gateway}``. Every inbound needs a ``kuma.io/service`` tag; ports must be
unique across inbounds and outbounds on the same address.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from atoll.resources.base import Duration, Port, Spec
from atoll.resources.types import ResourceType, Scope, register

SERVICE_TAG = "kuma.io/service"
PROTOCOL_TAG = "kuma.io/protocol"
ZONE_TAG = "kuma.io/zone"
PROTOCOLS = ("tcp", "http", "http2", "grpc", "kafka")


class InboundHealth(Spec):
    ready: bool = True


class TcpProbe(Spec):
    pass


class ServiceProbe(Spec):
    interval: Duration | None = None
    timeout: Duration | None = None
    unhealthy_threshold: int | None = Field(default=None, ge=1)
    healthy_threshold: int | None = Field(default=None, ge=1)
    tcp: TcpProbe | None = None


class Inbound(Spec):
    port: Port | None = None
    service_port: Port | None = None
    service_address: str | None = None
    address: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    health: InboundHealth | None = None
    service_probe: ServiceProbe | None = None
    name: str | None = None
    state: str | None = None

    @model_validator(mode="after")
    def _tags(self) -> Inbound:
        if not self.tags.get(SERVICE_TAG):
            raise ValueError(f'tags: "{SERVICE_TAG}" tag is required on every inbound')
        proto = self.tags.get(PROTOCOL_TAG)
        if proto is not None and proto not in PROTOCOLS:
            raise ValueError(f'tags: "{PROTOCOL_TAG}" must be one of {", ".join(PROTOCOLS)}, got "{proto}"')
        return self

    @property
    def service(self) -> str:
        return self.tags[SERVICE_TAG]

    @property
    def protocol(self) -> str:
        return self.tags.get(PROTOCOL_TAG, "tcp")


class BackendRef(Spec):
    kind: str
    name: str | None = None
    port: Port | None = None
    labels: dict[str, str] | None = None


class Outbound(Spec):
    address: str | None = None
    port: Port
    tags: dict[str, str] | None = None
    backend_ref: BackendRef | None = None

    @model_validator(mode="after")
    def _target(self) -> Outbound:
        if not self.tags and self.backend_ref is None:
            raise ValueError(f'tags: "{SERVICE_TAG}" tag or backendRef is required on every outbound')
        if self.tags is not None and self.backend_ref is None and not self.tags.get(SERVICE_TAG):
            raise ValueError(f'tags: "{SERVICE_TAG}" tag is required on every outbound')
        return self

    @property
    def service(self) -> str:
        if self.tags and self.tags.get(SERVICE_TAG):
            return self.tags[SERVICE_TAG]
        assert self.backend_ref is not None and self.backend_ref.name is not None
        return self.backend_ref.name


class ReachableService(Spec):
    pass


class TransparentProxying(Spec):
    redirect_port_inbound: Port | None = None
    redirect_port_outbound: Port | None = None
    redirect_port_inbound_v6: Port | None = Field(default=None, alias="redirectPortInboundV6")
    reachable_services: list[str] | None = None
    ip_family_mode: str | None = None


class Admin(Spec):
    port: Port | None = None


class Gateway(Spec):
    type: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Gateway:
        if self.type is not None and self.type not in ("DELEGATED", "BUILTIN"):
            raise ValueError(f'type: must be DELEGATED or BUILTIN, got "{self.type}"')
        if not self.tags.get(SERVICE_TAG):
            raise ValueError(f'tags: "{SERVICE_TAG}" tag is required on a gateway')
        return self


class Networking(Spec):
    address: str
    advertised_address: str | None = None
    inbound: list[Inbound] = Field(default_factory=list)
    outbound: list[Outbound] = Field(default_factory=list)
    transparent_proxying: TransparentProxying | None = None
    admin: Admin | None = None
    gateway: Gateway | None = None

    @model_validator(mode="after")
    def _ports(self) -> Networking:
        seen: dict[tuple[str, int], str] = {}
        for i, ib in enumerate(self.inbound):
            if ib.port is None:
                continue
            k = (ib.address or self.address, ib.port)
            if k in seen:
                raise ValueError(f"inbound[{i}].port: {k[1]} is already used by {seen[k]}")
            seen[k] = f"inbound[{i}]"
        for i, ob in enumerate(self.outbound):
            k = (ob.address or "127.0.0.1", ob.port)
            if k in seen:
                raise ValueError(f"outbound[{i}].port: {k[0]}:{k[1]} is already used by {seen[k]}")
            seen[k] = f"outbound[{i}]"
        return self


class DataplaneSpec(Spec):
    networking: Networking
    metrics: dict[str, object] | None = None


DATAPLANE = register(
    ResourceType(
        name="Dataplane",
        spec_model=DataplaneSpec,
        scope=Scope.MESH,
        flattened=True,
        plural="dataplanes",
        owner="zone",
    )
)
