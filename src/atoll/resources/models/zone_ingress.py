"""ZoneIngress: the proxy that takes cross-zone traffic into a zone (SNI pass-through).

Universal form (flattened): ``zone``, ``networking{address, port (10001 when unset),
advertisedAddress, advertisedPort, admin.port}``, ``availableServices[]{tags, instances, mesh,
externalService}`` (computed by the zone CP). Other zones reach it at advertisedAddress:advertisedPort;
both are set together or not at all.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from atoll.resources.base import Check, Port, Spec, Tags, spec_check
from atoll.resources.models.dataplane import Admin, service_tags
from atoll.resources.types import Scope, register_type

DEFAULT_INGRESS_PORT = 10001


class IngressNetworking(Spec):
    address: str | None = None
    port: Port = DEFAULT_INGRESS_PORT
    advertised_address: str | None = None
    advertised_port: Port | None = None
    admin: Admin | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if (self.advertised_address is None) != (self.advertised_port is None):
            missing = "advertisedPort" if self.advertised_port is None else "advertisedAddress"
            check.add(missing, "advertisedAddress and advertisedPort must be set together")


class AvailableService(Spec):
    tags: Tags
    instances: int = Field(default=0, ge=0)
    mesh: str | None = None
    external_service: bool | None = None

    _tags = field_validator("tags")(service_tags("an available service"))


class ZoneIngressSpec(Spec):
    zone: str | None = None
    networking: IngressNetworking
    available_services: list[AvailableService] | None = None

    @property
    def advertised(self) -> tuple[str, int] | None:
        """Where other zones dial this ingress, or ``None`` when it is not advertised (ignored)."""
        n = self.networking
        if n.advertised_address is None or n.advertised_port is None:
            return None
        return n.advertised_address, n.advertised_port


ZONE_INGRESS = register_type("ZoneIngress", ZoneIngressSpec, Scope.GLOBAL, plural="zoneingresses", owner="zone")
