"""What the GUI's pages show, computed by the functions the REST API and the reconciler use.

Nothing here counts or weighs anything of its own, so a page and the REST API cannot disagree:

- a proxy's state is ``atoll.api.insights.dataplane_insight`` (what ``dataplanes+insights`` answers);
- a zone's state is the ``zone_insights`` callable behind ``GET /zones+insights``;
- a service's endpoints, protocol and the weights of its endpoints per zone are those of a
  ``MeshView`` built for that zone from the stored resources (``atoll.topology.view``, the index the
  reconciler builds EDS from; a local endpoint weighs 1, a remote zone's ingress its instance count);
- a policy's proxies are ``atoll.topology.explain.policy_reach`` (``atoll inspect policy``).

``Sources`` is what the pages read: the store, the API's ``ApiInfo`` and the insight callables of
``ApiDependencies``. Every function returns JSON-ready data; lists are paged and filtered here, on
the server, so a mesh of thousands of proxies sends the browser one page.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from atoll.api.deps import ApiInfo, DataplaneInsights, ProxyEndpoints, ZoneInsights
from atoll.api.insights import dataplane_insight
from atoll.resources.meta import Resource
from atoll.resources.types import all_types, types_where
from atoll.store.protocol import ListFilter, Store, list_all
from atoll.topology.explain import policy_reach, zone_name
from atoll.topology.index import is_ready
from atoll.topology.service_names import NO_NAMES, ServiceNames
from atoll.topology.view import MeshView

NamesSource = Callable[[str, str], Awaitable[ServiceNames]]
"""``(mesh, zone) -> ServiceNames``: the names table the CP hands that mesh's views."""

ZONE_LABEL = "kuma.io/zone"
MAX_PAGE = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class Sources:
    """What the pages read (the same values ``create_app`` gives the REST routes)."""

    store: Store
    info: ApiInfo
    proxies: ProxyEndpoints | None = None
    dataplane_insights: DataplaneInsights | None = None
    zone_insights: ZoneInsights | None = None
    service_names: NamesSource | None = None
    """The ``<service>.mesh`` / VirtualOutbound names and VIPs of a mesh in a zone, where this CP
    allocates them (the services page shows them); ``None``: none shown."""

    @property
    def local_zone(self) -> str:
        """The zone this CP serves (a standalone CP's proxies are in zone ``local``)."""
        return self.info.zone or "local"

    def zone_of(self, r: Resource[Any]) -> str:
        """The zone of a proxy resource: its ``kuma.io/zone`` label at global, else its spec's, else ours."""
        return r.meta.labels.get(ZONE_LABEL) or getattr(r.spec, "zone", None) or self.local_zone

    def insight(self, mesh: str, name: str) -> dict[str, Any]:
        return dataplane_insight(self.proxies, self.dataplane_insights, mesh, name)


async def _all(store: Store, type_name: str, mesh: str | None = None) -> list[Resource[Any]]:
    return await list_all(store, ListFilter(type=type_name, mesh=mesh))


def read_only_kinds(info: ApiInfo) -> dict[str, str]:
    """Kinds this CP's API refuses to write, each with where to edit them instead."""
    out: dict[str, str] = {}
    for rt in all_types():
        if info.mode == "global" and rt.owner == "zone":
            out[rt.name] = "written by zone control planes (their proxies register them)"
        elif info.federated and rt.owner == "global":
            out[rt.name] = "owned by the global control plane: edit it there, it syncs to this zone"
    return out


# --- zones ----------------------------------------------------------------------------------------


async def zones(src: Sources) -> dict[str, Any]:
    """Every zone with its ``zoneInsight`` (as ``/zones+insights``), its proxies online/total, its
    ingresses and egresses, and warnings (offline, NACKs, another CP version than this one)."""
    store = src.store
    by_zone: dict[str, dict[str, int]] = defaultdict(lambda: {"online": 0, "total": 0})
    for m in await _all(store, "Mesh"):  # mesh by mesh: the stores list within one mesh fastest
        for dp in await _all(store, "Dataplane", m.name):
            counts = by_zone[src.zone_of(dp)]
            counts["total"] += 1
            counts["online"] += bool(src.insight(m.name, dp.name).get("online"))
    ingresses: dict[str, list[str]] = defaultdict(list)
    for zi in await _all(store, "ZoneIngress"):
        ingresses[src.zone_of(zi)].append(zi.meta.labels.get("kuma.io/display-name", zi.name))
    egresses: dict[str, list[str]] = defaultdict(list)
    for ze in await _all(store, "ZoneEgress"):
        egresses[src.zone_of(ze)].append(ze.meta.labels.get("kuma.io/display-name", ze.name))
    items = []
    if src.info.mode == "global":
        for z in await _all(store, "Zone"):
            insight = await src.zone_insights(z.name) if src.zone_insights is not None else {"online": False}
            items.append(_zone(src, z.name, z.spec.is_enabled, insight, by_zone, ingresses, egresses))
    else:
        local = {"online": True, "cpVersion": src.info.version, "local": True}
        items.append(_zone(src, src.local_zone, True, local, by_zone, ingresses, egresses))
    return {"mode": src.info.mode, "total": len(items), "items": items}


def _zone(
    src: Sources,
    name: str,
    enabled: bool,
    insight: dict[str, Any],
    proxies: dict[str, dict[str, int]],
    ingresses: dict[str, list[str]],
    egresses: dict[str, list[str]],
) -> dict[str, Any]:
    online = bool(insight.get("online"))
    warnings = []
    if not enabled:
        warnings.append("disabled: global sends it nothing and other zones do not route to it")
    if not online:
        warnings.append("offline: not connected to global; it keeps serving what it last received")
    version = insight.get("cpVersion")
    if online and version and version != src.info.version:
        warnings.append(f"out of date: runs {version}, global runs {src.info.version}")
    if insight.get("nacks"):
        warnings.append(f"{insight['nacks']} sync(s) refused: {insight.get('lastError') or 'no detail'}")
    counts = proxies.get(name, {"online": 0, "total": 0})
    return {
        "name": name,
        "enabled": enabled,
        "zoneInsight": insight,
        "proxies": dict(counts),
        # a ZoneIngress/ZoneEgress is registered while its proxy is connected (removed after it leaves)
        "ingresses": {"online": len(ingresses.get(name, [])) if online else 0, "names": ingresses.get(name, [])},
        "egresses": {"online": len(egresses.get(name, [])) if online else 0, "names": egresses.get(name, [])},
        "warnings": warnings,
    }


# --- meshes and services --------------------------------------------------------------------------


async def meshes(src: Sources) -> dict[str, Any]:
    store = src.store
    items = []
    for m in await _all(store, "Mesh"):
        page = await store.list(ListFilter(type="Dataplane", mesh=m.name), limit=0)
        mtls = m.spec.mtls is not None and bool(m.spec.mtls.enabled_backend)
        items.append({"name": m.name, "mtls": mtls, "dataplanes": page.total})
    return {"total": len(items), "items": items}


async def services(src: Sources, mesh: str) -> dict[str, Any]:
    """Per service of ``mesh``: instances per zone (ready/total), the zones that reach it, its
    protocol, and per calling zone the share of requests each zone's endpoints get (EDS weights)."""
    store = src.store
    mesh_r = await store.get("Mesh", mesh)
    dataplanes = await _all(store, "Dataplane", mesh)
    ingresses = await _all(store, "ZoneIngress")
    egresses = await _all(store, "ZoneEgress")
    inputs = [
        p for rt in types_where(policy=True) if rt.name != "ExternalService" for p in await _all(store, rt.name, mesh)
    ]
    externals = await _all(store, "ExternalService", mesh)
    if src.info.mode == "global":
        zone_list = [z.name for z in await _all(store, "Zone") if z.spec.is_enabled]
    else:
        zone_list = [src.local_zone]
    enabled = set(zone_list)
    remote_ingresses = tuple(zi for zi in ingresses if zi.spec.zone in enabled or src.info.mode != "global")
    views = {
        zone: MeshView(
            mesh=mesh_r,
            dataplanes=tuple(dp for dp in dataplanes if src.zone_of(dp) == zone),
            zone=zone,
            zone_ingresses=remote_ingresses,
            policies=tuple(inputs),
            external_services=tuple(externals),
            zone_egresses=tuple(eg for eg in egresses if src.zone_of(eg) == zone),
            names=await src.service_names(mesh, zone) if src.service_names is not None else NO_NAMES,
        )
        for zone in zone_list
    }
    instances: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: {"ready": 0, "total": 0}))
    for dp in dataplanes:
        for ib in dp.spec.networking.inbound:
            counts = instances[ib.service][src.zone_of(dp)]
            counts["total"] += 1
            counts["ready"] += is_ready(ib)
    names = sorted(set(instances) | {s for v in views.values() for s in v.index.endpoints})
    items = []
    for service in names:
        shares = {}
        protocol = None
        for zone, view in views.items():
            endpoints = view.index.endpoints.get(service, ())
            if not endpoints:
                continue
            weights: dict[str, int] = defaultdict(int)
            for ep in endpoints:  # as the ClusterLoadAssignment weighs them (atoll.xds.generate.envoy)
                weights[ep.zone] += max(1, ep.weight) if ep.weight is not None else 1
            shares[zone] = dict(sorted(weights.items()))
            if protocol is None or zone in instances[service]:
                protocol = view.index.protocols.get(service, "tcp")
        items.append(
            {
                "service": service,
                "instances": {z: dict(c) for z, c in sorted(instances[service].items())},
                "reachableFrom": sorted(shares),
                "protocol": protocol or "tcp",
                "names": sorted(
                    {f"{n.hostname} {n.vip}" for v in views.values() for n in v.names if n.service == service}
                ),
                "trafficShare": shares,
                "external": service in next(iter(views.values())).index.externals if views else False,
            }
        )
    return {"mesh": mesh, "zones": zone_list, "total": len(items), "items": items}


# --- proxies ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProxyFilter:
    """The filters of the proxies page; empty strings match everything."""

    zone: str = ""
    service: str = ""
    state: str = ""  # "", online, offline, nack
    name: str = ""
    offset: int = 0
    size: int = 50


async def proxies(src: Sources, mesh: str, f: ProxyFilter) -> dict[str, Any]:
    """One page of ``mesh``'s Dataplanes matching ``f``, each with its insight (``dataplanes+insights``)."""
    await src.store.get("Mesh", mesh)
    matched = []
    for dp in await _all(src.store, "Dataplane", mesh):
        zone = src.zone_of(dp)
        shown = zone_name(dp)
        if f.zone and zone != f.zone:
            continue
        if f.name and f.name not in shown:
            continue
        if f.service and all(ib.service != f.service for ib in dp.spec.networking.inbound):
            continue
        insight = src.insight(mesh, dp.name)
        if f.state == "online" and not insight.get("online"):
            continue
        if f.state == "offline" and insight.get("online"):
            continue
        if f.state == "nack" and not insight.get("nackCount"):
            continue
        matched.append((dp, zone, shown, insight))
    size = max(1, min(f.size, MAX_PAGE))
    page = matched[f.offset : f.offset + size]
    items = [_proxy(dp, zone, shown, insight) for dp, zone, shown, insight in page]
    return {"mesh": mesh, "total": len(matched), "offset": f.offset, "size": size, "items": items}


def _proxy(dp: Resource[Any], zone: str, shown: str, insight: dict[str, Any]) -> dict[str, Any]:
    net = dp.spec.networking
    return {
        "name": dp.name,
        "displayName": shown,
        "zone": zone,
        "inbounds": [{"service": ib.service, "port": ib.port, "ready": is_ready(ib)} for ib in net.inbound],
        "outbounds": [{"service": ob.service, "port": ob.port} for ob in net.outbound],
        "dataplaneInsight": insight,
    }


# --- rollout ----------------------------------------------------------------------------------------


def rollout_state(insight: dict[str, Any], since: datetime | None) -> tuple[str, str]:
    """Whether the proxy has the config made after ``since``: ``ACKed`` (every xDS type ACKed, the
    last ACK after the change), ``NACKed`` (a type's newest config refused), else ``pending``; with why."""
    if not insight.get("online"):
        return "pending", "proxy offline"
    types = insight.get("xds") or {}
    refused = [t for t, s in types.items() if not s.get("inSync") and s.get("lastNackError")]
    if refused:
        return "NACKed", "; ".join(f"{t}: {types[t]['lastNackError']}" for t in sorted(refused))
    waiting = [t for t, s in types.items() if not s.get("inSync")]
    if waiting:
        return "pending", "sent, not yet ACKed: " + ", ".join(sorted(waiting))
    acked = [s.get("lastAckedAt") for s in types.values() if s.get("lastAckedAt")]
    if not acked:
        return "pending", "no config ACKed yet"
    if since is not None and max(acked) < _iso(since):
        return "pending", "in sync, but no config ACKed since the change"
    return "ACKed", "every type ACKed after the change"


def _iso(t: datetime) -> str:
    """``t`` as the inventory writes times (UTC, milliseconds), so the two compare as strings."""
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


async def rollout(src: Sources, mesh: str, kind: str, name: str) -> dict[str, Any]:
    """For the policy ``kind/name`` of ``mesh``: per proxy it selects (``policy_reach``) and per zone,
    whether the config made after its last change is ACKed, pending or NACKed."""
    store = src.store
    policy = await store.get(kind, name, mesh)
    changed = policy.meta.modification_time or policy.meta.creation_time
    dataplanes = {dp.name: dp for dp in await _all(store, "Dataplane", mesh)}
    reach = policy_reach(policy, dataplanes.values(), await _all(store, "MeshHTTPRoute", mesh))
    per_zone: dict[str, dict[str, int]] = defaultdict(lambda: {"ACKed": 0, "pending": 0, "NACKed": 0})
    items = []
    for r in reach:
        dp = dataplanes[r.dataplane]
        zone = src.zone_of(dp)
        state, why = rollout_state(src.insight(mesh, dp.name), changed)
        per_zone[zone][state] += 1
        items.append({"name": dp.name, "displayName": zone_name(dp), "zone": zone, "state": state, "detail": why})
    zones_out = []
    for zone, counts in sorted(per_zone.items()):
        total = sum(counts.values())
        overall = "NACKed" if counts["NACKed"] else "ACKed" if counts["ACKed"] == total else "pending"
        zones_out.append({"zone": zone, "state": overall, "total": total, **counts})
    return {
        "mesh": mesh,
        "kind": kind,
        "name": name,
        "changedAt": _iso(changed) if changed is not None else None,
        "zones": zones_out,
        "items": items,
    }


async def latest_policy(src: Sources, mesh: str) -> dict[str, str] | None:
    """The most recently changed policy of ``mesh`` (the rollout page's default), if any."""
    newest: tuple[datetime, str, str] | None = None
    for rt in types_where(policy=True):
        for p in await _all(src.store, rt.name, mesh):
            t = p.meta.modification_time or p.meta.creation_time
            if t is not None and (newest is None or t > newest[0]):
                newest = (t, rt.name, p.name)
    return None if newest is None else {"kind": newest[1], "name": newest[2]}
