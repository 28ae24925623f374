"""MeshLoadBalancingStrategy settings: the balancing algorithm, route hash policies, locality awareness.

``load_balancer`` flattens the block of the chosen type (``leastRequest``, ``ringHash``, ``maglev``:
only that one is read). ``hash_policies`` are the effective ones: the top-level ``hashPolicies``,
else those of the ``ringHash``/``maglev`` block; types Envoy routes cannot hash on (``SourceIP``)
are left out. ``locality`` is None without ``localityAwareness`` (the Mesh's
``routing.localityAwareLoadBalancing`` then decides); ``failover_threshold`` is a percentage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from atoll.topology.settings.conf import block, blocks, flag, integer, number, seconds, text, texts

__all__ = ["FailoverRule", "HashPolicy", "LoadBalancer", "LoadBalancingSettings", "LocalityAwareness"]

LbType = Literal["RoundRobin", "LeastRequest", "RingHash", "Random", "Maglev"]
HashType = Literal["Header", "Cookie", "Connection", "QueryParameter", "FilterState"]
FailoverType = Literal["Any", "Only", "AnyExcept", "None"]
_LB_TYPES: frozenset[str] = frozenset(("RoundRobin", "LeastRequest", "RingHash", "Random", "Maglev"))
_LB_BLOCK = {"LeastRequest": "leastRequest", "RingHash": "ringHash", "Maglev": "maglev"}
_HASH_BLOCK = {
    "Header": "header",
    "Cookie": "cookie",
    "QueryParameter": "queryParameter",
    "FilterState": "filterState",
}


@dataclass(frozen=True, slots=True)
class HashPolicy:
    """One route hash policy. ``name``: the header, cookie or query parameter; ``key``: the filter
    state key; ``ttl``/``path``: the cookie's; ``source_ip``: Connection's."""

    type: HashType
    terminal: bool = False
    name: str = ""
    key: str = ""
    ttl: float | None = None
    path: str | None = None
    source_ip: bool = True

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> HashPolicy | None:
        kind = conf.get("type")
        terminal = bool(conf.get("terminal", False))
        if kind == "Connection":
            return cls(
                type="Connection",
                terminal=terminal,
                source_ip=bool((block(conf, "connection") or {}).get("sourceIP", True)),
            )
        if kind not in _HASH_BLOCK:
            return None
        sub = conf[_HASH_BLOCK[kind]]
        return cls(
            type=cast(HashType, kind),
            terminal=terminal,
            name=text(sub, "name") or "",
            key=text(sub, "key") or "",
            ttl=seconds(sub, "ttl"),
            path=text(sub, "path"),
        )


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    type: LbType
    choice_count: int | None = None
    active_request_bias: float | None = None
    hash_function: str | None = None
    min_ring_size: int | None = None
    max_ring_size: int | None = None
    table_size: int | None = None

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any] | None) -> LoadBalancer | None:
        kind = (conf or {}).get("type")
        if conf is None or kind not in _LB_TYPES:
            return None
        sub = block(conf, _LB_BLOCK.get(kind, "")) or {}
        return cls(
            type=cast(LbType, kind),
            choice_count=integer(sub, "choiceCount"),
            active_request_bias=number(sub, "activeRequestBias"),
            hash_function=text(sub, "hashFunction"),
            min_ring_size=integer(sub, "minRingSize"),
            max_ring_size=integer(sub, "maxRingSize"),
            table_size=integer(sub, "tableSize"),
        )


@dataclass(frozen=True, slots=True)
class FailoverRule:
    """``crossZone.failover[i]``: applies when ``from_zones`` is None or lists the local zone."""

    to_type: FailoverType | None
    to_zones: tuple[str, ...] = ()
    from_zones: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class LocalityAwareness:
    disabled: bool = False
    failover: tuple[FailoverRule, ...] = ()
    failover_threshold: float | None = None

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> LocalityAwareness:
        cross = block(conf, "crossZone") or {}
        rules = []
        for rule in blocks(cross, "failover"):
            source = block(rule, "from")
            to = block(rule, "to") or {}
            kind = to.get("type")
            rules.append(
                FailoverRule(
                    to_type=cast(FailoverType, kind) if kind in ("Any", "Only", "AnyExcept", "None") else None,
                    to_zones=texts(to, "zones"),
                    from_zones=None if source is None else texts(source, "zones"),
                )
            )
        return cls(
            disabled=bool(flag(conf, "disabled")),
            failover=tuple(rules),
            failover_threshold=number(block(cross, "failoverThreshold") or {}, "percentage"),
        )


@dataclass(frozen=True, slots=True)
class LoadBalancingSettings:
    load_balancer: LoadBalancer | None = None
    hash_policies: tuple[HashPolicy, ...] = ()
    locality: LocalityAwareness | None = None

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> LoadBalancingSettings:
        balancer = block(conf, "loadBalancer") or {}
        hashes = conf.get("hashPolicies") or (block(balancer, _LB_BLOCK.get(str(balancer.get("type")), "")) or {}).get(
            "hashPolicies"
        )
        aware = block(conf, "localityAwareness")
        return cls(
            load_balancer=LoadBalancer.from_conf(block(conf, "loadBalancer")),
            hash_policies=tuple(h for c in hashes or () if (h := HashPolicy.from_conf(c)) is not None),
            locality=None if aware is None else LocalityAwareness.from_conf(aware),
        )
