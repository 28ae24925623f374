"""MeshFaultInjection: inject HTTP aborts, delays and bandwidth limits into inbound traffic.

``default.http`` is a list of faults; each has ``abort{httpStatus, percentage}``, ``delay{value,
percentage}`` and/or ``responseBandwidth{limit, percentage}`` — percentages are 0..100, an integer
or a quoted decimal (``"2.5"``); ``limit`` is a rate such as ``50kbps`` or ``1mbps``.

Faults are injected by the receiving sidecar: ``from[]`` (callers by tags) and ``rules[]`` (every
caller, or callers by SPIFFE ID with ``matches[].spiffeID``). As in Kuma's validator, ``to[]``
(kind Mesh) is for builtin gateways only (top ``targetRef`` MeshGateway) and refused otherwise.
"""

from __future__ import annotations

import re

from pydantic import Field

from atoll.resources.base import Check, Duration, Percentage, Spec, spec_check
from atoll.resources.models.common import SpiffeMatch
from atoll.resources.models.policy import FullPolicySpec, PolicyItem, register_policy
from atoll.resources.models.targetref import FROM_KINDS, TOP_KINDS_GW, RefRules

_BANDWIDTH = re.compile(r"^\d+(kbps|Mbps|mbps|Gbps|gbps)$")


class Abort(Spec):
    http_status: int = Field(ge=100, le=599)
    percentage: Percentage


class Delay(Spec):
    value: Duration
    percentage: Percentage


class ResponseBandwidth(Spec):
    limit: str
    percentage: Percentage

    @spec_check
    def _check(self, check: Check) -> None:
        if not _BANDWIDTH.match(self.limit):
            check.add("limit", f'must be a rate such as "50kbps", "10mbps" or "1gbps", got "{self.limit}"')


class Fault(Spec):
    abort: Abort | None = None
    delay: Delay | None = None
    response_bandwidth: ResponseBandwidth | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        check.one_of(self, "abort", "delay", "response_bandwidth")


class Conf(Spec):
    http: list[Fault] | None = None


To = PolicyItem[Conf]
From = PolicyItem[Conf]


class Rule(Spec):
    matches: list[SpiffeMatch] | None = None
    default: Conf


class MeshFaultInjectionSpec(FullPolicySpec[To, From, Rule]):
    refs = RefRules(top=TOP_KINDS_GW, to=("Mesh",), from_=FROM_KINDS, rules=True, to_gateway_only=True)


MESH_FAULT_INJECTION = register_policy("MeshFaultInjection", "meshfaultinjections", MeshFaultInjectionSpec)
