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
MeshRateLimit on the inbound listener; MeshAccessLog on inbound and outbound listeners (added per
proxy, to a copy of the shared listener); locality
priorities (MeshLoadBalancingStrategy ``localityAwareness`` or the Mesh's
``routing.localityAwareLoadBalancing``) in the ClusterLoadAssignment. Two outbounds of one service
share its cluster, configured by the first one's policies.

Routes (``atoll.xds.generate.routes``): a MeshHTTPRoute replaces the outbound route configuration's
single route by its rules, a MeshTCPRoute the tcp_proxy's cluster by its weighted backends; each
route backend other than the service itself (``OutboundView.splits``: a tag subset, or another
service) is an EDS cluster of its own (named ``<service>{version=v2}`` or ``<service>``, mTLS with
the subset's SNI, configured by the routing outbound's policies), after every outbound's own cluster.
MeshTimeout/MeshRetry that target a MeshHTTPRoute are applied to its routes last.

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
from dataclasses import fields, replace

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from atoll.errors import AtollError
from atoll.topology import (
    EGRESS_SERVICE,
    HTTP_PROTOCOLS,
    Endpoint,
    Identity,
    InboundView,
    MtlsView,
    OutboundView,
    PolicySettings,
    ProxyView,
)
from atoll.topology.routes import Split
from atoll.topology.settings import AccessLogSettings
from atoll.xds.generate import envoy as e
from atoll.xds.generate import policies as p
from atoll.xds.generate import rbac, tls
from atoll.xds.generate.external import external_cluster
from atoll.xds.generate.resources import EnvoyResources
from atoll.xds.generate.routes import apply_route_policies, apply_routes

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
        if ib.policies.access_log is not None:
            inbound = _logged_inbound(view.mesh, ib, mtls, p.LogContext.of(view, base_pb2.INBOUND, ib.service))
        listeners.append(inbound)
        # Two inbounds on one local port share the cluster; the first (in address:port order) wins.
        local.setdefault(cluster.name, cluster)
    clusters.extend(local.values())

    remote: dict[str, cluster_pb2.Cluster] = {}
    for ob in view.outbounds:
        listener, cluster = _shared_outbound(view.mesh, mtls is not None, ob)
        if ob.policies.access_log is not None:
            listener = _logged_outbound(
                view.mesh, mtls is not None, ob, p.LogContext.of(view, base_pb2.OUTBOUND, ob.service)
            )
        listeners.append(listener)
        if ob.service in remote:
            continue  # two outbounds of one service: the first one's cluster
        remote[ob.service] = cluster
        if ob.external is None or ob.via_egress:
            clas.append(_load_assignment(view, ob))
    for ob, split in _splits(view):  # route backends: after every outbound's own cluster
        if split.name not in remote:
            remote[split.name] = _split_cluster(view.mesh, mtls is not None, ob, split)
            if split.has_assignment:
                clas.append(_split_load_assignment(view, ob, split))
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


_OutboundMessages = tuple[listener_pb2.Listener, cluster_pb2.Cluster]
_BY_IDENTITY: dict[tuple[int, str, bool], tuple[OutboundView, _OutboundMessages]] = {}
_BY_IDENTITY_MAX = 4096


def _shared_outbound(mesh: str, mtls: bool, ob: OutboundView) -> _OutboundMessages:
    """``_outbound``, looked up by the identity of ``ob`` first: proxies of one mesh view share their
    outbound views (``topology.proxy_view``), so the usual hit hashes no view (and no endpoint)."""
    key = (id(ob), mesh, mtls)
    hit = _BY_IDENTITY.get(key)
    if hit is not None and hit[0] is ob:
        return hit[1]
    out = _outbound(mesh, mtls, ob)
    if len(_BY_IDENTITY) >= _BY_IDENTITY_MAX:
        _BY_IDENTITY.clear()
    _BY_IDENTITY[key] = (ob, out)  # holds ``ob``: its id is not reused while the entry lives
    return out


@functools.lru_cache(maxsize=4096)
def _outbound(mesh: str, mtls: bool, ob: OutboundView) -> _OutboundMessages:
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
    apply_routes(listener, ob)
    p.apply_outbound_listener_policies(listener, ob)
    if ob.caller_tags is not None:
        caller_tags = ob.caller_tags
        e.edit_filters(listener, lambda manager: p.tag_caller(manager, caller_tags), lambda _: None)
    apply_route_policies(listener, ob)
    return listener, _outbound_cluster(mesh, mtls, ob)


def _outbound_cluster(mesh: str, mtls: bool, ob: OutboundView) -> cluster_pb2.Cluster:
    """The cluster of ``ob.service`` (shared by its outbound and a route sending to the whole service)."""
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
    return cluster


def _splits(view: ProxyView) -> list[tuple[OutboundView, Split]]:
    """The split clusters of the outbounds' routes, each with the first outbound needing it."""
    seen: set[str] = {ob.service for ob in view.outbounds}
    out = []
    for ob in view.outbounds:
        for split in ob.splits:
            if split.name not in seen:
                seen.add(split.name)
                out.append((ob, split))
    return out


@functools.lru_cache(maxsize=4096)
def _split_cluster(mesh: str, mtls: bool, ob: OutboundView, split: Split) -> cluster_pb2.Cluster:
    """The cluster of a route backend ``split``, configured by the policies of ``ob`` (the outbound whose
    route names it): a whole service's (or ExternalService's) as an outbound to it would have; a tag
    subset's an EDS cluster of its own, mTLS with the subset's SNI."""
    backend = replace(
        ob,
        service=split.service,
        protocol=split.protocol,
        endpoints=split.endpoints,
        external=split.external,
        via_egress=split.via_egress,
        splits=(),
    )
    if not split.tags:
        return _outbound_cluster(mesh, mtls, backend)
    cluster = e.eds_cluster(split.name, protocol=split.protocol)
    if mtls:
        ctx = tls.upstream_tls_context(mesh, split.service, split.protocol, tags=split.tags)
        cluster.transport_socket.CopyFrom(tls.transport_socket(ctx))
    p.apply_outbound_policies(cluster, backend)
    return cluster


def _split_load_assignment(view: ProxyView, ob: OutboundView, split: Split) -> endpoint_pb2.ClusterLoadAssignment:
    return _assignment(view, ob.policies, split.name, split.endpoints)


def _with_access_log(
    listener: listener_pb2.Listener, settings: AccessLogSettings, ctx: p.LogContext
) -> listener_pb2.Listener:
    out = listener_pb2.Listener()
    out.CopyFrom(listener)  # the shared listener stays as it is
    p.apply_access_log(out, settings, ctx)
    return out


@functools.lru_cache(maxsize=4096)
def _logged_inbound(mesh: str, ib: InboundView, mtls: MtlsView | None, ctx: p.LogContext) -> listener_pb2.Listener:
    """The listener of ``ib`` with its MeshAccessLog backends (memoized per proxy context: a proxy
    regenerated with the same view keeps the same message)."""
    assert ib.policies.access_log is not None
    return _with_access_log(_inbound(mesh, ib, mtls)[0], ib.policies.access_log, ctx)


@functools.lru_cache(maxsize=4096)
def _logged_outbound(mesh: str, mtls: bool, ob: OutboundView, ctx: p.LogContext) -> listener_pb2.Listener:
    """The outbound listener of ``ob`` with its MeshAccessLog backends (memoized as above)."""
    assert ob.policies.access_log is not None
    return _with_access_log(_outbound(mesh, mtls, ob)[0], ob.policies.access_log, ctx)


def sidecar_endpoint_update(old: ProxyView, new: ProxyView) -> list[endpoint_pb2.ClusterLoadAssignment] | None:
    """The ClusterLoadAssignments to swap into ``old``'s resources to get ``new``'s, or None when that
    is not enough (regenerate everything with ``sidecar_resources``).

    It is enough when ``new`` differs from ``old`` only in the ``endpoints`` of some outbounds and those
    changes touch nothing but the assignments: a cluster's outlier detection depends on whether the
    service has zone-ingress endpoints, so a service gaining or losing its first one needs the full
    path. Assignments are returned for the outbounds (and route split clusters) whose endpoints are
    not the same tuple object (``topology.with_endpoints`` replaces exactly the changed ones); they are
    shared, never mutate them.
    """
    if len(old.outbounds) != len(new.outbounds) or not _same_except(old, new, _VIEW_FIELDS):
        return None
    changed: set[str] = set()
    for a, b in zip(old.outbounds, new.outbounds, strict=True):
        if a is b:
            continue
        if not _same_except(a, b, _OUTBOUND_FIELDS) or len(a.splits) != len(b.splits):
            return None
        pairs = [(a.service, a.endpoints, b.endpoints)]
        for x, y in zip(a.splits, b.splits, strict=True):
            if x.name != y.name or x.service != y.service or x.tags != y.tags:
                return None
            pairs.append((y.name, x.endpoints, y.endpoints))
        for name, before, after in pairs:
            if before is after:
                continue
            if _cross_zone(before) != _cross_zone(after):
                return None  # outlier detection of the cluster changes
            changed.add(name)
    out: list[endpoint_pb2.ClusterLoadAssignment] = []
    seen: set[str] = set()
    for ob in new.outbounds:  # the first outbound of a service configures its cluster, as above
        if ob.service in seen:
            continue
        seen.add(ob.service)
        if ob.service not in changed or (ob.external is not None and not ob.via_egress):
            continue  # unchanged, or an ExternalService reached directly (no assignment)
        out.append(_load_assignment(new, ob))
    out.extend(
        _split_load_assignment(new, ob, split)
        for ob, split in _splits(new)
        if split.name in changed and split.has_assignment
    )
    return out


def _cross_zone(endpoints: tuple[Endpoint, ...]) -> bool:
    return any(ep.ingress for ep in endpoints)


_VIEW_FIELDS = tuple(f.name for f in fields(ProxyView) if f.name != "outbounds")
_OUTBOUND_FIELDS = tuple(f.name for f in fields(OutboundView) if f.name not in ("endpoints", "splits"))


def _same_except(a: object, b: object, names: tuple[str, ...]) -> bool:
    for name in names:
        x, y = getattr(a, name), getattr(b, name)
        if x is not y and x != y:
            return False
    return True


def _load_assignment(view: ProxyView, ob: OutboundView) -> endpoint_pb2.ClusterLoadAssignment:
    """The (shared) ClusterLoadAssignment of outbound ``ob``'s EDS cluster, zone priorities applied."""
    return _assignment(view, ob.policies, ob.service, ob.endpoints)


def _assignment(
    view: ProxyView, policies: PolicySettings, name: str, endpoints: tuple[Endpoint, ...]
) -> endpoint_pb2.ClusterLoadAssignment:
    lb = p.zone_priorities(
        policies.load_balancing,
        view.zone,
        (ep.zone for ep in endpoints),
        mesh_locality_aware=view.locality_aware,
    )
    priorities, factor = lb if lb is not None else (None, None)
    return e.shared_cluster_load_assignment(name, endpoints, priorities, factor)


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
