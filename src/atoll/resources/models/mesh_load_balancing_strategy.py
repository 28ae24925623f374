"""MeshLoadBalancingStrategy: the load-balancing algorithm and locality awareness (``to[]`` only).

``loadBalancer.type`` selects the algorithm; only the block of that type may be set
(``ringHash`` with RingHash, ...). ``localityAwareness.crossZone.failover[i].to.type`` is Any, Only,
AnyExcept or None; Only and AnyExcept need ``zones``, Any and None take none.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic.alias_generators import to_camel

from atoll.resources.base import Check, Decimal, Duration, Percentage, Spec, spec_check
from atoll.resources.models.policy import PolicyItem, ToPolicySpec, register_policy
from atoll.resources.models.targetref import TO_KINDS, TOP_KINDS_GW, RefRules


class AffinityTag(Spec):
    key: str = Field(min_length=1)
    weight: int | None = Field(default=None, ge=1)


class LocalZone(Spec):
    affinity_tags: list[AffinityTag] | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        tags = self.affinity_tags or []
        weighted = [t.weight is not None for t in tags]
        if any(weighted) and not all(weighted):
            for i, w in enumerate(weighted):
                if not w:
                    check.add(f"affinityTags[{i}].weight", "either all affinity tags have a weight or none")


class FailoverFrom(Spec):
    zones: list[str] = Field(min_length=1)


class FailoverTo(Spec):
    type: Literal["None", "Only", "Any", "AnyExcept"]
    zones: list[str] | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if self.type in ("Only", "AnyExcept") and not self.zones:
            check.add("zones", f"must have at least one zone with type {self.type}")
        if self.type in ("Any", "None") and self.zones is not None:
            check.add("zones", f"must not be set with type {self.type}")


class Failover(Spec):
    from_: FailoverFrom | None = Field(default=None, alias="from")
    to: FailoverTo


class FailoverThreshold(Spec):
    percentage: Percentage


class CrossZone(Spec):
    failover: list[Failover] | None = None
    failover_threshold: FailoverThreshold | None = None


class LocalityAwareness(Spec):
    disabled: bool | None = None
    local_zone: LocalZone | None = None
    cross_zone: CrossZone | None = None


class HeaderHash(Spec):
    name: str = Field(min_length=1)


class CookieHash(Spec):
    name: str = Field(min_length=1)
    ttl: Duration | None = None
    path: str | None = None


class ConnectionHash(Spec):
    """Kuma spells the field ``sourceIP``; ``sourceIp`` (what this model once took) is still read."""

    source_ip: bool | None = Field(
        default=None, validation_alias=AliasChoices("sourceIP", "sourceIp"), serialization_alias="sourceIP"
    )


class QueryParameterHash(Spec):
    name: str = Field(min_length=1)


class FilterStateHash(Spec):
    key: str = Field(min_length=1)


HashType = Literal["Header", "Cookie", "Connection", "SourceIP", "QueryParameter", "FilterState"]
_HASH_BLOCK = {
    "Header": "header",
    "Cookie": "cookie",
    "Connection": "connection",
    "QueryParameter": "query_parameter",
    "FilterState": "filter_state",
}


class HashPolicy(Spec):
    type: HashType
    terminal: bool | None = None
    header: HeaderHash | None = None
    cookie: CookieHash | None = None
    connection: ConnectionHash | None = None
    query_parameter: QueryParameterHash | None = None
    filter_state: FilterStateHash | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        want = _HASH_BLOCK.get(self.type)
        if want is not None and getattr(self, want) is None:
            check.add(to_camel(want), f"required with type {self.type}")
        for block in _HASH_BLOCK.values():
            if block != want and getattr(self, block) is not None:
                check.add(to_camel(block), f"must not be set with type {self.type}")


class RingHash(Spec):
    hash_function: Literal["XXHash", "MurmurHash2"] | None = None
    min_ring_size: int | None = Field(default=None, ge=1, le=8_388_608)
    max_ring_size: int | None = Field(default=None, ge=1, le=8_388_608)
    hash_policies: list[HashPolicy] | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if (
            self.min_ring_size is not None
            and self.max_ring_size is not None
            and self.min_ring_size > self.max_ring_size
        ):
            check.add("minRingSize", "must not be greater than maxRingSize")


class LeastRequest(Spec):
    choice_count: int | None = Field(default=None, ge=2)
    active_request_bias: Decimal | None = None


class Maglev(Spec):
    table_size: int | None = Field(default=None, ge=1, le=5_000_011)
    hash_policies: list[HashPolicy] | None = None


LbType = Literal["RoundRobin", "LeastRequest", "RingHash", "Random", "Maglev"]
_LB_BLOCK = {"LeastRequest": "least_request", "RingHash": "ring_hash", "Maglev": "maglev"}


class LoadBalancer(Spec):
    type: LbType
    least_request: LeastRequest | None = None
    ring_hash: RingHash | None = None
    maglev: Maglev | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        for t, block in _LB_BLOCK.items():
            if t != self.type and getattr(self, block) is not None:
                check.add(to_camel(block), f"must not be set with type {self.type}")


class Conf(Spec):
    locality_awareness: LocalityAwareness | None = None
    load_balancer: LoadBalancer | None = None
    hash_policies: list[HashPolicy] | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if not self.model_fields_set:
            check.add("", "at least one of localityAwareness, loadBalancer, hashPolicies has to be defined")


class MeshLoadBalancingStrategySpec(ToPolicySpec[PolicyItem[Conf]]):
    refs = RefRules(top=TOP_KINDS_GW, to=TO_KINDS, gateway_tags=True)


MESH_LOAD_BALANCING_STRATEGY = register_policy(
    "MeshLoadBalancingStrategy", "meshloadbalancingstrategies", MeshLoadBalancingStrategySpec
)
