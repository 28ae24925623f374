"""MeshLoadBalancingStrategy -> cluster ``lb_policy``, route ``hash_policy`` and zone priorities
(settings: ``atoll.topology.settings.load_balancing``).

The cluster gets ``lb_policy`` and its LeastRequest/RingHash/Maglev config; the outbound routes get
the hash policies; locality awareness becomes priorities per zone in the ClusterLoadAssignment
(``zone_priorities``), computed per proxy since they depend on the proxy's zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3.route_components_pb2 import RouteAction

from atoll.topology.settings.load_balancing import HashPolicy, LoadBalancer, LoadBalancingSettings, LocalityAwareness
from atoll.xds.generate.envoy import duration, u32

__all__ = ["apply_load_balancer", "hash_policies", "zone_priorities"]

Hash = RouteAction.HashPolicy
_LB_POLICY = {
    "RoundRobin": cluster_pb2.Cluster.ROUND_ROBIN,
    "LeastRequest": cluster_pb2.Cluster.LEAST_REQUEST,
    "RingHash": cluster_pb2.Cluster.RING_HASH,
    "Random": cluster_pb2.Cluster.RANDOM,
    "Maglev": cluster_pb2.Cluster.MAGLEV,
}


def hash_policies(items: Sequence[HashPolicy]) -> list[RouteAction.HashPolicy]:
    """MeshLoadBalancingStrategy ``hashPolicies`` (for RingHash/Maglev) as route hash policies."""
    out = []
    for h in items:
        hp = Hash(terminal=h.terminal)
        if h.type == "Header":
            hp.header.CopyFrom(Hash.Header(header_name=h.name))
        elif h.type == "Cookie":
            cookie = Hash.Cookie(name=h.name)
            if h.ttl is not None:
                cookie.ttl.CopyFrom(duration(h.ttl))
            if h.path is not None:
                cookie.path = h.path
            hp.cookie.CopyFrom(cookie)
        elif h.type == "Connection":
            hp.connection_properties.CopyFrom(Hash.ConnectionProperties(source_ip=h.source_ip))
        elif h.type == "QueryParameter":
            hp.query_parameter.CopyFrom(Hash.QueryParameter(name=h.name))
        else:
            hp.filter_state.CopyFrom(Hash.FilterState(key=h.key))
        out.append(hp)
    return out


def apply_load_balancer(cluster: cluster_pb2.Cluster, lb: LoadBalancer) -> None:
    """The cluster's ``lb_policy`` and the config of its LeastRequest, RingHash or Maglev balancer."""
    cluster.lb_policy = _LB_POLICY[lb.type]
    if lb.type == "LeastRequest":
        cfg = cluster_pb2.Cluster.LeastRequestLbConfig()
        if lb.choice_count is not None:
            cfg.choice_count.CopyFrom(u32(lb.choice_count))
        if lb.active_request_bias is not None:
            cfg.active_request_bias.CopyFrom(
                base_pb2.RuntimeDouble(default_value=lb.active_request_bias, runtime_key="")
            )
        cluster.least_request_lb_config.CopyFrom(cfg)
    elif lb.type == "RingHash":
        ring = cluster_pb2.Cluster.RingHashLbConfig()
        if lb.hash_function == "MurmurHash2":
            ring.hash_function = cluster_pb2.Cluster.RingHashLbConfig.MURMUR_HASH_2
        if lb.min_ring_size is not None:
            ring.minimum_ring_size.value = lb.min_ring_size
        if lb.max_ring_size is not None:
            ring.maximum_ring_size.value = lb.max_ring_size
        cluster.ring_hash_lb_config.CopyFrom(ring)
    elif lb.type == "Maglev" and lb.table_size is not None:
        cluster.maglev_lb_config.table_size.value = lb.table_size


def _failover_priorities(aware: LocalityAwareness, local_zone: str, others: list[str]) -> dict[str, int]:
    prio: dict[str, int] = {local_zone: 0}
    if not aware.failover:
        prio.update({z: 1 for z in others})
        return prio
    for i, rule in enumerate(aware.failover):
        if rule.from_zones is not None and local_zone not in rule.from_zones:
            continue
        listed = set(rule.to_zones)
        chosen = {
            "Any": set(others),
            "Only": set(others) & listed,
            "AnyExcept": set(others) - listed,
        }.get(str(rule.to_type), set())
        for z in sorted(chosen):
            prio.setdefault(z, i + 1)
    return prio


def zone_priorities(
    conf: LoadBalancingSettings | None, local_zone: str, zones: Iterable[str], *, mesh_locality_aware: bool = False
) -> tuple[tuple[tuple[str, int], ...], int | None] | None:
    """Locality-aware load balancing as (zone -> priority) pairs and an overprovisioning factor, or
    None to keep every zone at priority 0 (weights only).

    MeshLoadBalancingStrategy ``localityAwareness`` (unless ``disabled``): the local zone is priority
    0; without ``crossZone.failover`` every other zone is priority 1; with it, rule i (whose ``from``
    is unset or lists the local zone) puts the zones it names (``Any``, ``Only`` zones, ``AnyExcept``
    zones, ``None``) that no earlier rule took at priority i+1, and zones no rule takes get no
    traffic (left out of the assignment). ``failoverThreshold.percentage`` p becomes Envoy's
    overprovisioning factor 100*100/p (fail over once less than p % of a priority is healthy).
    Without a policy, the Mesh's ``routing.localityAwareLoadBalancing`` gives local 0, others 1.
    """
    aware = conf.locality if conf is not None else None
    if aware is None:
        if not mesh_locality_aware:
            return None
        aware = LocalityAwareness()
    if aware.disabled:
        return None
    prio = _failover_priorities(aware, local_zone, sorted({z for z in zones if z != local_zone}))
    pct = aware.failover_threshold
    factor = round(100 * 100 / pct) if pct is not None and pct > 0 else None
    return tuple(sorted(prio.items())), factor
