"""Dataplane: one data plane proxy (a sidecar or a gateway) and the services it serves and reaches.

Universal form (spec flattened): ``networking{address, advertisedAddress, inbound[], outbound[],
transparentProxying, admin, gateway}`` and an optional per-proxy ``metrics`` override. Every inbound
needs a ``kuma.io/service`` tag; ports must be unique across inbounds and outbounds on the same
address. Errors point at the offending field (``networking.inbound[1].port``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field, field_validator

from atoll.errors import join_path
from atoll.resources.base import Check, Duration, Port, Spec, Tags, spec_check
from atoll.resources.models.mesh import PrometheusConf
from atoll.resources.types import Scope, register_type

SERVICE_TAG = "kuma.io/service"
PROTOCOL_TAG = "kuma.io/protocol"
ZONE_TAG = "kuma.io/zone"
PROTOCOLS = ("tcp", "http", "http2", "grpc", "kafka")


def check_service_tags(check: Check, tags: Tags, path: str, what: str) -> None:
    """``kuma.io/service`` present and non-empty; ``kuma.io/protocol`` one of ``PROTOCOLS``."""
    if not tags.get(SERVICE_TAG):
        check.add(path, f'"{SERVICE_TAG}" tag is required on {what}')
    proto = tags.get(PROTOCOL_TAG)
    if proto is not None and proto not in PROTOCOLS:
        check.add(join_path(path, PROTOCOL_TAG), f'must be one of {", ".join(PROTOCOLS)}, got "{proto}"')


def service_tags(what: str) -> Callable[[Tags], Tags]:
    """A field validator for a ``tags`` field that needs ``kuma.io/service`` (runs even when other
    fields of the model are wrong, so every problem is reported at once)."""

    def validate(tags: Tags) -> Tags:
        check = Check()
        check_service_tags(check, tags, "", what)
        check.done()
        return tags

    return validate


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
    tags: Tags = Field(default_factory=dict)
    health: InboundHealth | None = None
    service_probe: ServiceProbe | None = None
    name: str | None = None
    state: Literal["Ready", "NotReady", "Ignored"] | None = None

    _tags = field_validator("tags")(service_tags("every inbound"))

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
    labels: Tags | None = None


class Outbound(Spec):
    address: str | None = None
    port: Port
    tags: Tags | None = None
    backend_ref: BackendRef | None = None

    @spec_check
    def _target(self, check: Check) -> None:
        if not self.tags and self.backend_ref is None:
            check.add("tags", f'"{SERVICE_TAG}" tag or backendRef is required on every outbound')
        elif self.tags is not None and self.backend_ref is not None:
            check.add("backendRef", "must not be set together with tags")
        elif self.tags is not None:
            check_service_tags(check, self.tags, "tags", "every outbound")

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
    ip_family_mode: Literal["DualStack", "IPv4", "IPv6", "dualstack", "ipv4", "ipv6"] | None = None


class Admin(Spec):
    port: Port | None = None


class Gateway(Spec):
    type: Literal["DELEGATED", "BUILTIN"] | None = None
    tags: Tags = Field(default_factory=dict)

    _tags = field_validator("tags")(service_tags("a gateway"))


class Networking(Spec):
    address: str = Field(min_length=1)
    advertised_address: str | None = None
    inbound: list[Inbound] = Field(default_factory=list)
    outbound: list[Outbound] = Field(default_factory=list)
    transparent_proxying: TransparentProxying | None = None
    admin: Admin | None = None
    gateway: Gateway | None = None

    @spec_check
    def _ports(self, check: Check) -> None:
        seen: dict[tuple[str, int], str] = {}
        for i, ib in enumerate(self.inbound):
            if ib.port is None:
                continue
            k = (ib.address or self.address, ib.port)
            if k in seen:
                check.add(f"inbound[{i}].port", f"{k[1]} is already used by {seen[k]}")
            seen[k] = f"inbound[{i}]"
        for i, ob in enumerate(self.outbound):
            k = (ob.address or "127.0.0.1", ob.port)
            if k in seen:
                check.add(f"outbound[{i}].port", f"{k[0]}:{k[1]} is already used by {seen[k]}")
            seen[k] = f"outbound[{i}]"
        if self.gateway is not None and self.inbound:
            check.add("inbound", "must not be set on a gateway Dataplane")
        if self.gateway is None and not self.inbound:
            check.add("inbound", "a Dataplane needs at least one inbound (or a gateway)")


class DataplaneMetrics(Spec):
    """A per-proxy override of the mesh's metrics backend."""

    type: Literal["prometheus"]
    conf: PrometheusConf | None = None


class DataplaneSpec(Spec):
    networking: Networking
    metrics: DataplaneMetrics | None = None


DATAPLANE = register_type("Dataplane", DataplaneSpec, Scope.MESH, plural="dataplanes", owner="zone")
