"""ZoneEgress: the proxy through which a zone's remote and external traffic leaves.

Universal form (flattened): ``zone``, ``networking{address, port (10002 when unset), admin.port}``.
"""

from __future__ import annotations

from atoll.resources.base import Port, Spec
from atoll.resources.models.dataplane import Admin
from atoll.resources.types import Scope, register_type

DEFAULT_EGRESS_PORT = 10002


class EgressNetworking(Spec):
    address: str | None = None
    port: Port = DEFAULT_EGRESS_PORT
    admin: Admin | None = None


class ZoneEgressSpec(Spec):
    zone: str | None = None
    networking: EgressNetworking


ZONE_EGRESS = register_type("ZoneEgress", ZoneEgressSpec, Scope.GLOBAL, plural="zoneegresses", owner="zone")
