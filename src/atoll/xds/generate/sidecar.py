"""ProxyView (+ Identity) -> the Envoy resources of a sidecar (pure).

Per inbound: listener ``inbound:<addr>:<port>`` on the inbound address and port, forwarding to the
STATIC cluster ``localhost:<servicePort>`` (the application at serviceAddress:servicePort).
Per outbound: listener ``outbound:<addr>:<port>``, forwarding to the EDS cluster named after the
service (its ClusterLoadAssignment, of the same name, comes over ADS: endpoints grouped by zone,
each with its tags as ``envoy.lb`` metadata and its weight when it has one).

HTTP protocols (``http``, ``http2``, ``grpc``) get an HTTP connection manager with its route
configuration **inline** (named like the listener, one virtual host named after the service), so a
sidecar needs no RDS; ``tcp`` (and ``kafka``) get tcp_proxy. ``http2``/``grpc`` clusters speak
HTTP/2 upstream. Stat prefixes: ``inbound_<service>``, ``outbound_<service>``. Output is sorted by
name and has no time in it: equal inputs give equal resources.

mTLS (``view.mtls`` set; ``identity`` then required, else ``MissingIdentity``), see
``atoll.xds.generate.tls``: the two SDS secrets go in ``secrets``; each outbound cluster originates
mTLS; each inbound listener terminates it:

- ``STRICT``: one filter chain with the downstream TLS context (client certificate required);
- ``PERMISSIVE``: a TLS inspector and two chains, ``transport_protocol: tls`` (mTLS, as STRICT) and
  ``raw_buffer`` (plaintext). Plaintext callers have no identity, so the plaintext chain carries no
  RBAC: PERMISSIVE exists to let not-yet-meshed callers in.

Permissions (``atoll.xds.generate.rbac``) apply only with mTLS (identities come from certificates,
as in Kuma): every mTLS chain gets RBAC from ``InboundView.permissions``; none -> every caller denied.

The other policies (``atoll.xds.generate.policies``): MeshHealthCheck, MeshCircuitBreaker,
MeshTimeout, MeshLoadBalancingStrategy on the outbound cluster (plus outlier detection by default
when the service has zone-ingress endpoints); MeshTimeout, MeshRetry and hash policies on the
outbound listener's route/HCM/tcp_proxy (and the caller's ``x-kuma-tags`` header when a
MeshFaultInjection of the mesh tells callers apart); inbound MeshTimeout, MeshFaultInjection and
MeshRateLimit on the inbound listener; locality
priorities (MeshLoadBalancingStrategy ``localityAwareness`` or the Mesh's
``routing.localityAwareLoadBalancing``) in the ClusterLoadAssignment. Two outbounds of one service
share its cluster, configured by the first one's policies.

ExternalServices (``OutboundView.external``): reached directly, the cluster (named after the service)
goes to the external address with the service's own TLS (``atoll.xds.generate.external``; no CLA);
through a zone egress (``via_egress``) it is an EDS cluster like any other, mTLS with SNI
``<service>{mesh=<mesh>}`` to a server that must be ``spiffe://<mesh>/zone-egress``.

Endpoint-only changes (``sidecar_endpoint_update(old, new)``): when two views differ only in outbound
endpoints, the new resources are the old ones with some ClusterLoadAssignments swapped; it returns
those (or None when a cluster changes too), so a control plane can skip regenerating the rest.
"""

from __future__ import annotations

import functools
from dataclasses import fields

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from atoll.errors import AtollError
from atoll.topology import EGRESS_SERVICE, HTTP_PROTOCOLS, Identity, InboundView, MtlsView, OutboundView, ProxyView
from atoll.xds.generate import envoy as e
from atoll.xds.generate import policies as p
from atoll.xds.generate import rbac, tls
from atoll.xds.generate.external import external_cluster
from atoll.xds.generate.resources import EnvoyResources

__all__ = ["GenerationError", "MissingIdentity", "sidecar_endpoint_update", "sidecar_resources"]


class GenerationError(AtollError, ValueError):
    """The control plane cannot generate a proxy's configuration from what it was given (a local error)."""


class MissingIdentity(GenerationError):
    """The mesh has mTLS enabled but no identity certificate was given for the proxy."""


def sidecar_resources(view: ProxyView, identity: Identity | None = None) -> EnvoyResources:
    """The listeners, clusters, ClusterLoadAssignments (and, with mTLS, secrets) of the sidecar ``view``."""
    mtls = view.mtls
    if mtls is not None and identity is None:
        raise MissingIdentity(
            f'mesh "{view.mesh}" has mTLS enabled (backend "{mtls.backend}"): proxy "{view.name}" needs an identity'
        )
    listeners: list[listener_pb2.Listener] = []
    clusters: list[cluster_pb2.Cluster] = []
    clas: list[endpoint_pb2.ClusterLoadAssignment] = []
    secrets: list[secret_pb2.Secret] = []
    if mtls is not None and identity is not None:
        secrets = list(_secrets(view.mesh, identity))

    local: dict[str, cluster_pb2.Cluster] = {}
    for ib in view.inbounds:
        inbound, cluster = _inbound(view.mesh, ib, mtls)
        listeners.append(inbound)
        # Two inbounds on one local port share the cluster; the first (in address:port order) wins.
        local.setdefault(cluster.name, cluster)
    clusters.extend(local.values())

    remote: dict[str, cluster_pb2.Cluster] = {}
    for ob in view.outbounds:
        listener, cluster = _outbound(view.mesh, mtls is not None, ob)
        listeners.append(listener)
        if ob.service in remote:
            continue  # two outbounds of one service: the first one's cluster
        remote[ob.service] = cluster
        if ob.external is None or ob.via_egress:
            clas.append(_load_assignment(view, ob))
    clusters.extend(remote.values())

    return EnvoyResources.of(listeners=listeners, clusters=clusters, cluster_load_assignments=clas, secrets=secrets)


# The memoized builders below return shared messages: a control plane serializes each once, however
# many proxies (or successive generations of one proxy) hold it. Never mutate their results.


@functools.lru_cache(maxsize=16384)
def _secrets(mesh: str, identity: Identity) -> tuple[secret_pb2.Secret, ...]:
    """The SDS secrets of ``identity`` (memoized: regenerating a proxy keeps its secret messages)."""
    return tuple(tls.mesh_secrets(mesh, identity))


@functools.lru_cache(maxsize=16384)
def _inbound(mesh: str, ib: InboundView, mtls: MtlsView | None) -> tuple[listener_pb2.Listener, cluster_pb2.Cluster]:
    """The listener of inbound ``ib`` and the cluster of its local application (memoized per value:
    a change elsewhere in the mesh leaves them, and their serialized bytes, as they were)."""
    listener = _inbound_listener(mesh, ib, mtls)
    p.apply_inbound_policies(listener, ib)
    name = e.local_cluster_name(ib.service_port)
    cluster = e.static_cluster(name, ib.service_address, ib.service_port, protocol=ib.protocol)
    p.apply_local_cluster_policies(cluster, ib)
    return listener, cluster


@functools.lru_cache(maxsize=4096)
def _outbound(mesh: str, mtls: bool, ob: OutboundView) -> tuple[listener_pb2.Listener, cluster_pb2.Cluster]:
    """The listener and cluster of outbound ``ob``. Memoized: every proxy reaching a service the same
    way (same port, protocol, policies, endpoints) gets the same two messages, so a control plane
    serializes them once for all of them. The results are shared: never mutate them."""
    name = e.outbound_listener_name(ob.address, ob.port)
    listener = e.listener(
        name,
        ob.address,
        ob.port,
        direction=base_pb2.OUTBOUND,
        filters=[
            e.network_filter(
                ob.protocol,
                stat_prefix=e.stat_name("outbound", ob.service),
                service=ob.service,
                cluster=ob.service,
                route_name=name,
            )
        ],
    )
    p.apply_outbound_listener_policies(listener, ob)
    if ob.caller_tags is not None:
        caller_tags = ob.caller_tags
        e.edit_filters(listener, lambda manager: p.tag_caller(manager, caller_tags), lambda _: None)
    if ob.external is not None and not ob.via_egress:
        # An ExternalService reached directly: its own address, its own TLS (no mesh mTLS).
        cluster = external_cluster(ob.service, ob.external)
    else:
        cluster = e.eds_cluster(ob.service, protocol=ob.protocol)
        if mtls:
            server = EGRESS_SERVICE if ob.external is not None else None
            ctx = tls.upstream_tls_context(mesh, ob.service, ob.protocol, server_service=server)
            cluster.transport_socket.CopyFrom(tls.transport_socket(ctx))
    p.apply_outbound_policies(cluster, ob)
    return listener, cluster


def sidecar_endpoint_update(old: ProxyView, new: ProxyView) -> list[endpoint_pb2.ClusterLoadAssignment] | None:
    """The ClusterLoadAssignments to swap into ``old``'s resources to get ``new``'s, or None when that
    is not enough (regenerate everything with ``sidecar_resources``).

    It is enough when ``new`` differs from ``old`` only in the ``endpoints`` of some outbounds and those
    changes touch nothing but the assignments: a cluster's outlier detection depends on whether the
    service has zone-ingress endpoints, so a service gaining or losing its first one needs the full
    path. Assignments are returned for the outbounds whose endpoints are not the same tuple object
    (``topology.with_endpoints`` replaces exactly the changed ones); they are shared, never mutate them.
    """
    if len(old.outbounds) != len(new.outbounds) or not _same_except(old, new, _VIEW_FIELDS):
        return None
    changed: set[str] = set()
    for a, b in zip(old.outbounds, new.outbounds, strict=True):
        if a is b:
            continue
        if not _same_except(a, b, _OUTBOUND_FIELDS):
            return None
        if a.endpoints is b.endpoints:
            continue
        if any(ep.ingress for ep in a.endpoints) != any(ep.ingress for ep in b.endpoints):
            return None
        changed.add(b.service)
    out: list[endpoint_pb2.ClusterLoadAssignment] = []
    seen: set[str] = set()
    for ob in new.outbounds:  # the first outbound of a service configures its cluster, as above
        if ob.service in seen:
            continue
        seen.add(ob.service)
        if ob.service not in changed or (ob.external is not None and not ob.via_egress):
            continue  # unchanged, or an ExternalService reached directly (no assignment)
        out.append(_load_assignment(new, ob))
    return out


_VIEW_FIELDS = tuple(f.name for f in fields(ProxyView) if f.name != "outbounds")
_OUTBOUND_FIELDS = tuple(f.name for f in fields(OutboundView) if f.name != "endpoints")


def _same_except(a: object, b: object, names: tuple[str, ...]) -> bool:
    for name in names:
        x, y = getattr(a, name), getattr(b, name)
        if x is not y and x != y:
            return False
    return True


def _load_assignment(view: ProxyView, ob: OutboundView) -> endpoint_pb2.ClusterLoadAssignment:
    """The (shared) ClusterLoadAssignment of outbound ``ob``'s EDS cluster, zone priorities applied."""
    lb = p.zone_priorities(
        ob.policies.load_balancing,
        view.zone,
        (ep.zone for ep in ob.endpoints),
        mesh_locality_aware=view.locality_aware,
    )
    priorities, factor = lb if lb is not None else (None, None)
    return e.shared_cluster_load_assignment(ob.service, ob.endpoints, priorities, factor)


def _inbound_filters(mesh: str, ib: InboundView, *, permissions: bool) -> list[listener_components_pb2.Filter]:
    stat_prefix = e.stat_name("inbound", ib.service)
    name = e.inbound_listener_name(ib.address, ib.port)
    cluster = e.local_cluster_name(ib.service_port)
    if ib.protocol in HTTP_PROTOCOLS:
        http_filters = [rbac.http_rbac_filter(mesh, ib.permissions, ib.identity_rules)] if permissions else []
        return [
            e.network_filter(
                ib.protocol,
                stat_prefix=stat_prefix,
                service=ib.service,
                cluster=cluster,
                route_name=name,
                http_filters=http_filters,
            )
        ]
    main = e.network_filter(ib.protocol, stat_prefix=stat_prefix, service=ib.service, cluster=cluster, route_name=name)
    if not permissions:
        return [main]
    return [rbac.network_rbac_filter(mesh, ib.permissions, stat_prefix, ib.identity_rules), main]


def _inbound_listener(mesh: str, ib: InboundView, mtls: MtlsView | None) -> listener_pb2.Listener:
    name = e.inbound_listener_name(ib.address, ib.port)
    if mtls is None:
        return e.listener(
            name, ib.address, ib.port, direction=base_pb2.INBOUND, filters=_inbound_filters(mesh, ib, permissions=False)
        )
    secure = listener_components_pb2.FilterChain(
        filters=_inbound_filters(mesh, ib, permissions=True),
        transport_socket=tls.transport_socket(tls.downstream_tls_context(mesh, ib.protocol)),
    )
    if mtls.mode != "PERMISSIVE":
        return e.listener(name, ib.address, ib.port, direction=base_pb2.INBOUND, filter_chains=[secure])
    secure.filter_chain_match.CopyFrom(listener_components_pb2.FilterChainMatch(transport_protocol="tls"))
    plain = listener_components_pb2.FilterChain(
        filter_chain_match=listener_components_pb2.FilterChainMatch(transport_protocol="raw_buffer"),
        filters=_inbound_filters(mesh, ib, permissions=False),
    )
    return e.listener(
        name,
        ib.address,
        ib.port,
        direction=base_pb2.INBOUND,
        filter_chains=[secure, plain],
        listener_filters=[tls.tls_inspector()],
    )
