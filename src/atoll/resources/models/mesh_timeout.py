"""MeshTimeout: connection, idle and HTTP timeouts for outbound (``to``) and inbound (``from``,
``rules``) traffic. Every timeout is a duration (``5s``, ``1m30s``, ``0s`` disables)."""

from __future__ import annotations

from atoll.resources.base import Check, Duration, Spec, spec_check
from atoll.resources.models.policy import ConfPolicySpec, register_policy
from atoll.resources.models.targetref import TO_KINDS, TOP_KINDS_GW, RefRules


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

    @spec_check
    def _check(self, check: Check) -> None:
        if not self.model_fields_set:
            check.add("", "at least one timeout has to be defined")


class MeshTimeoutSpec(ConfPolicySpec[Conf]):
    refs = RefRules(top=(*TOP_KINDS_GW, "MeshHTTPRoute"), to=TO_KINDS, from_=("Mesh",), rules=True, gateway_tags=True)


MESH_TIMEOUT = register_policy("MeshTimeout", "meshtimeouts", MeshTimeoutSpec)
