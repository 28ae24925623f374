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
from atoll.xds.generate.envoy import edit_filters, routes, u32
from atoll.xds.generate.policies.access_log import LogContext, apply_access_log
from atoll.xds.generate.policies.circuit_breaker import (
    INGRESS_OUTLIER_DETECTION,
    apply_circuit_breaker,
    apply_local_circuit_breaker,
    circuit_breakers,
    outlier_detection,
)
from atoll.xds.generate.policies.health_check import apply_health_check, health_check
from atoll.xds.generate.policies.load_balancing import apply_load_balancer, hash_policies, zone_priorities
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
    """Set on the inbound ``listener`` of ``ib`` what its inbound MeshTimeout says."""
    timeout = ib.policies.timeout
    if timeout is not None:
        edit_filters(listener, lambda m: timeouts_on_hcm(m, timeout), lambda t: timeouts_on_tcp(t, timeout))
