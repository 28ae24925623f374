"""Policy settings -> fields of a proxy's listeners and clusters (pure).

Reads the typed ``PolicySettings`` of ``OutboundView.policies``/``InboundView.policies``
(``atoll.topology.settings``: folded once per mesh view, durations already in seconds) and sets
fields on the resources the sidecar generator has just built, as Kuma's plugins do. One module per
policy kind, each with the functions that translate that kind's settings:

- ``health_check``: MeshHealthCheck -> the outbound cluster's active health check;
- ``circuit_breaker``: MeshCircuitBreaker -> thresholds and outlier detection (plus the cross-zone
  outlier detection default of clusters with zone-ingress endpoints), outbound and local clusters;
- ``timeout``: MeshTimeout -> route/HCM/tcp_proxy timeouts on listeners, connect and HTTP timeouts
  on clusters;
- ``retry``: MeshRetry -> the route retry policy and tcp_proxy connect attempts;
- ``load_balancing``: MeshLoadBalancingStrategy -> ``lb_policy``, route hash policies, and zone
  priorities in the ClusterLoadAssignment;
- ``fault_injection``: MeshFaultInjection -> HTTP fault filters on the inbound (per caller, by the
  ``x-kuma-tags`` header the callers' outbounds set: ``tag_caller``);
- ``rate_limit``: MeshRateLimit -> local rate limits on the inbound (HTTP filter + per-route
  limits, TCP connection filter);
- ``access_log``: MeshAccessLog -> access logs on the HCM/tcp_proxy of inbound and outbound
  listeners (per proxy: ``apply_access_log`` with the proxy's ``LogContext``, called by the sidecar
  generator on a copy of the shared listener).

The ``apply_*`` functions below are the only callers: each reads the settings of one outbound or
inbound and calls the kinds' functions in a fixed order (the last one to set a field wins:
MeshCircuitBreaker's ``healthyPanicThreshold`` over MeshHealthCheck's). A new kind adds its module
here and a call in the ``apply_*`` function of the resource it configures (see
``atoll.topology.settings`` for the whole recipe). MeshTrafficPermission is ``atoll.xds.generate.rbac``.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from atoll.topology import InboundView, OutboundView
from atoll.xds.generate.envoy import ROUTER_FILTER, edit_filters, routes, u32
from atoll.xds.generate.policies.access_log import LogContext, apply_access_log
from atoll.xds.generate.policies.circuit_breaker import (
    INGRESS_OUTLIER_DETECTION,
    apply_circuit_breaker,
    apply_local_circuit_breaker,
    circuit_breakers,
    outlier_detection,
)
from atoll.xds.generate.policies.fault_injection import (
    FAULT_PROTOCOLS,
    fault_filters,
    read_caller_identity,
    strip_caller_tags,
    tag_caller,
)
from atoll.xds.generate.policies.health_check import apply_health_check, health_check
from atoll.xds.generate.policies.load_balancing import apply_load_balancer, hash_policies, zone_priorities
from atoll.xds.generate.policies.rate_limit import http_rate_limit, tcp_rate_limit_filter
from atoll.xds.generate.policies.retry import DEFAULT_GRPC_RETRY_ON, DEFAULT_HTTP_RETRY_ON, retry_policy
from atoll.xds.generate.policies.timeout import cluster_timeouts, connect_timeout, timeouts_on_hcm, timeouts_on_tcp

__all__ = [
    "DEFAULT_GRPC_RETRY_ON",
    "DEFAULT_HTTP_RETRY_ON",
    "INGRESS_OUTLIER_DETECTION",
    "LogContext",
    "apply_access_log",
    "apply_cluster_policies",
    "apply_inbound_policies",
    "apply_local_cluster_policies",
    "apply_outbound_listener_policies",
    "apply_outbound_policies",
    "circuit_breakers",
    "hash_policies",
    "health_check",
    "outlier_detection",
    "retry_policy",
    "tag_caller",
    "zone_priorities",
]


def apply_outbound_policies(cluster: cluster_pb2.Cluster, ob: OutboundView) -> None:
    """Set on ``cluster`` (the EDS cluster of ``ob.service``, just built) what ``ob.policies`` say."""
    settings = ob.policies
    if settings.health_check is not None:
        apply_health_check(cluster, settings.health_check, ob.protocol)
    apply_circuit_breaker(cluster, settings.circuit_breaker, cross_zone=any(ep.ingress for ep in ob.endpoints))
    apply_cluster_policies(cluster, ob)


def apply_cluster_policies(cluster: cluster_pb2.Cluster, ob: OutboundView) -> None:
    """MeshTimeout and MeshLoadBalancingStrategy settings of the EDS cluster of ``ob``."""
    settings = ob.policies
    if settings.timeout is not None:
        cluster_timeouts(cluster, settings.timeout, ob.protocol)
    lb = settings.load_balancing
    if lb is not None and lb.load_balancer is not None:
        apply_load_balancer(cluster, lb.load_balancer)


def apply_outbound_listener_policies(listener: listener_pb2.Listener, ob: OutboundView) -> None:
    """Set on the outbound ``listener`` of ``ob`` the route/HCM/tcp_proxy parts of its policies."""
    timeout, retry, lb = ob.policies.timeout, ob.policies.retry, ob.policies.load_balancing
    hashes = lb.hash_policies if lb is not None else ()

    def on_hcm(manager: hcm_pb2.HttpConnectionManager) -> None:
        if timeout is not None:
            timeouts_on_hcm(manager, timeout)
        policy = retry_policy(retry, ob.protocol) if retry is not None else None
        hash_policy = hash_policies(hashes)
        for route in routes(manager):
            if policy is not None:
                route.route.retry_policy.CopyFrom(policy)
            route.route.hash_policy.extend(hash_policy)

    def on_tcp(tcp: tcp_proxy_pb2.TcpProxy) -> None:
        if timeout is not None:
            timeouts_on_tcp(tcp, timeout)
        if retry is not None and retry.tcp_max_connect_attempt is not None:
            tcp.max_connect_attempts.CopyFrom(u32(retry.tcp_max_connect_attempt))

    if timeout is not None or retry is not None or hashes:
        edit_filters(listener, on_hcm, on_tcp)


def apply_local_cluster_policies(cluster: cluster_pb2.Cluster, ib: InboundView) -> None:
    """Inbound MeshCircuitBreaker (``from[]``/``rules[]``: connection limits, outlier detection)
    and MeshTimeout ``connectionTimeout`` on the local application's cluster of ``ib``."""
    if ib.policies.circuit_breaker is not None:
        apply_local_circuit_breaker(cluster, ib.policies.circuit_breaker)
    if ib.policies.timeout is not None:
        connect_timeout(cluster, ib.policies.timeout)


def apply_inbound_policies(listener: listener_pb2.Listener, ib: InboundView) -> None:
    """Set on the inbound ``listener`` of ``ib`` its MeshTimeout, and add the filters of its
    MeshFaultInjection and MeshRateLimit (HTTP ones ahead of the router, faults first; the TCP
    connection limit first in every filter chain)."""
    timeout, rate_limit = ib.policies.timeout, ib.policies.rate_limit
    faults = ib.policies.fault_injection if ib.protocol in FAULT_PROTOCOLS else None
    http_limit = rate_limit.http if rate_limit is not None else None

    def on_hcm(manager: hcm_pb2.HttpConnectionManager) -> None:
        if timeout is not None:
            timeouts_on_hcm(manager, timeout)
        added = fault_filters(faults) if faults is not None else []
        if ib.strip_caller_tags:
            strip_caller_tags(manager)
        if faults is not None and faults.by_identity:
            read_caller_identity(manager)
        limit = http_rate_limit(manager, http_limit) if http_limit is not None else None
        if limit is not None:
            added.append(limit)
        _before_router(manager, added)

    def on_tcp(tcp: tcp_proxy_pb2.TcpProxy) -> None:
        if timeout is not None:
            timeouts_on_tcp(tcp, timeout)

    if timeout is not None or faults is not None or http_limit is not None or ib.strip_caller_tags:
        edit_filters(listener, on_hcm, on_tcp)
    connection_limit = tcp_rate_limit_filter(rate_limit.tcp) if rate_limit and rate_limit.tcp else None
    if connection_limit is not None:
        for chain in listener.filter_chains:
            chain.filters.insert(0, connection_limit)


def _before_router(manager: hcm_pb2.HttpConnectionManager, filters: list[hcm_pb2.HttpFilter]) -> None:
    if not filters:
        return
    chain = list(manager.http_filters)
    at = next((i for i, f in enumerate(chain) if f.name == ROUTER_FILTER), len(chain))
    del manager.http_filters[:]
    manager.http_filters.extend([*chain[:at], *filters, *chain[at:]])
