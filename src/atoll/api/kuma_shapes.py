"""Kuma's JSON shapes of insights and overviews, built from what Atoll knows: pure functions.

Kuma's tools (``kumactl inspect ...``, Kuma's GUI) read a proxy's or zone's state as a list of
``subscriptions`` (one per xDS or KDS stream: ``connectTime``, ``disconnectTime`` while offline,
``status`` counters, ``version``), a mesh's as counts (``MeshInsight``) and a service's as counts
plus a status (``ServiceInsight``). Atoll's own insight (``atoll.proxies.inventory.ProxyInsight``,
a global CP's synced copy, ``atoll.kds.GlobalInventory.zone_insight``) holds the newest stream only,
so a subscription here is that one stream. Every field is filled from Atoll's inventory or store,
or left out when Atoll does not know it (no count is invented: ``responsesSent`` is absent, as Atoll
counts ACKs and NACKs but not sends; ``mTLS`` certificate facts are absent). A proxy whose last
stream Atoll has no connect time for has no subscription: kumactl shows it offline, never connected.

Counts are strings, as Kuma's protobuf JSON writes 64-bit integers. Kuma names are kept exactly
(``controlPlaneInstanceId``, ``responsesAcknowledged``, ``responsesRejected``, ``dpVersions``).

``dataplane_inspect`` turns Atoll's explanation of a proxy (``atoll.topology.explain``) into the
per-attachment answer ``kumactl inspect dataplane NAME`` 2.14 prints: it reorganizes, never recomputes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from atoll.resources.codec import encode
from atoll.resources.meta import Resource
from atoll.topology.explain import ProxyExplanation

SERVICE_TAG = "kuma.io/service"
XDS_KINDS = ("cds", "eds", "lds", "rds", "sds")

ProxyInsight = Mapping[str, Any] | None
"""An Atoll proxy insight (``ProxyInsight.to_json()`` or a global CP's synced copy), or nothing known."""


def is_online(insight: ProxyInsight) -> bool:
    return bool(insight and insight.get("online"))


def proxy_subscriptions(insight: ProxyInsight) -> list[dict[str, Any]]:
    """Kuma's ``subscriptions`` of a proxy: its newest ADS stream, if Atoll knows when it began."""
    if not insight or not insight.get("connectedSince"):
        return []
    online = is_online(insight)
    if not online and not insight.get("disconnectedAt"):
        return []  # offline, and no time it went: no honest pair of times to show
    sub: dict[str, Any] = {"connectTime": insight["connectedSince"]}
    if insight.get("controlPlaneInstance"):
        sub["controlPlaneInstanceId"] = insight["controlPlaneInstance"]
    if not online:
        sub["disconnectTime"] = insight["disconnectedAt"]
    sub["status"] = _xds_status(insight.get("xds") or {})
    if insight.get("envoyVersion"):
        sub["version"] = {"envoy": {"version": insight["envoyVersion"]}}
    return [sub]


def _xds_status(types: Mapping[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = {}
    acks = nacks = 0
    times: list[str] = []
    for kind in XDS_KINDS:
        t = types.get(kind)
        if not t:
            continue
        a, n = int(t.get("acks") or 0), int(t.get("nacks") or 0)
        acks, nacks = acks + a, nacks + n
        status[kind] = _counts(a, n)
        times += [x for x in (t.get("lastSentAt"), t.get("lastAckedAt")) if x]
    status["total"] = _counts(acks, nacks)
    if times:
        status["lastUpdateTime"] = max(times)  # ISO times in UTC with one format: text order is time order
    return status


def _counts(acks: int, nacks: int) -> dict[str, str]:
    out: dict[str, str] = {}
    if acks:
        out["responsesAcknowledged"] = str(acks)
    if nacks:
        out["responsesRejected"] = str(nacks)
    return out


def zone_subscriptions(insight: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Kuma's ``subscriptions`` of a zone at global: its KDS session, if one was ever seen."""
    if not insight or not insight.get("connectedSince"):
        return []
    online = bool(insight.get("online"))
    if not online and not insight.get("disconnectedAt"):
        return []
    sub: dict[str, Any] = {"connectTime": insight["connectedSince"]}
    if insight.get("cpInstance"):
        sub["zoneInstanceId"] = insight["cpInstance"]
    if not online:
        sub["disconnectTime"] = insight["disconnectedAt"]
    sync = insight.get("lastSync") or {}
    times = [t for t in (sync.get("globalToZone"), sync.get("zoneToGlobal")) if t]
    status: dict[str, Any] = {"total": _counts(0, int(insight.get("nacks") or 0))}
    if times:
        status["lastUpdateTime"] = max(times)
    sub["status"] = status
    if insight.get("cpVersion"):
        sub["version"] = {"kumaCp": {"version": insight["cpVersion"]}}
    return [sub]


def overview(kind: str, r: Resource[Any], field: str, insight_field: str, insight: dict[str, Any]) -> dict[str, Any]:
    """A Kuma ``<Kind>Overview``: the envelope, the spec under ``field``, the insight beside it."""
    doc = encode(r)
    out: dict[str, Any] = {"type": kind}
    spec: dict[str, Any] = {}
    for k, v in doc.items():
        if k in ("name", "mesh", "labels", "creationTime", "modificationTime"):
            out[k] = v
        elif k != "type":
            spec[k] = v
    out[field] = spec
    out[insight_field] = insight
    return out


def dataplane_services(r: Resource[Any]) -> list[str]:
    """The services a Dataplane serves (its inbounds' or its gateway's ``kuma.io/service``)."""
    net = r.spec.networking
    tagged = [net.gateway] if net.gateway is not None else list(net.inbound)
    return sorted({t.tags[SERVICE_TAG] for t in tagged if SERVICE_TAG in t.tags})


def _state(total: int, online: int) -> dict[str, int]:
    out = {"total": total, "online": online, "offline": total - online}
    return {k: v for k, v in out.items() if v}


def mesh_insight(
    mesh: Resource[Any],
    dataplanes: list[Resource[Any]],
    insight: Callable[[Resource[Any]], ProxyInsight],
    external_services: list[Resource[Any]],
    totals: Mapping[str, int],
    policy_types: Iterable[str],
) -> dict[str, Any]:
    """Kuma's ``MeshInsight`` of ``mesh``: proxies by state, type and version; resource counts
    (``totals``: type name -> count, zero counts left out); services by kind."""
    online = {d.name for d in dataplanes if is_online(insight(d))}
    gateways = [d for d in dataplanes if d.spec.networking.gateway is not None]
    versions: dict[str, list[bool]] = {}
    for d in dataplanes:
        i = insight(d)
        if i and i.get("envoyVersion"):
            versions.setdefault(str(i["envoyVersion"]), []).append(d.name in online)
    internal = {s for d in dataplanes for s in dataplane_services(d)}
    external = {e.spec.tags[SERVICE_TAG] for e in external_services if SERVICE_TAG in e.spec.tags}
    policies = set(policy_types)
    doc = encode(mesh)
    return {
        "type": "MeshInsight",
        "name": mesh.name,
        **{k: doc[k] for k in ("creationTime", "modificationTime") if k in doc},
        "dataplanes": _state(len(dataplanes), len(online)),
        "dataplanesByType": {
            "standard": _state(len(dataplanes) - len(gateways), len(online) - sum(g.name in online for g in gateways)),
            "gateway": _state(len(gateways), sum(g.name in online for g in gateways)),
        },
        "policies": {t: {"total": n} for t, n in sorted(totals.items()) if n and t in policies},
        "resources": {t: {"total": n} for t, n in sorted(totals.items()) if n},
        "dpVersions": {"envoy": {v: _state(len(s), sum(s)) for v, s in sorted(versions.items())}},
        "mTLS": {},
        "services": _state_services(len(internal), len(external)),
    }


def _state_services(internal: int, external: int) -> dict[str, int]:
    out = {"total": internal + external, "internal": internal, "external": external}
    return {k: v for k, v in out.items() if v}


def service_insights(
    mesh: str,
    dataplanes: list[Resource[Any]],
    insight: Callable[[Resource[Any]], ProxyInsight],
    external_services: list[Resource[Any]],
) -> list[dict[str, Any]]:
    """Kuma's ``ServiceInsight`` of every service of ``mesh``, sorted by name: a service served by
    Dataplanes is ``online`` when all of them are, ``offline`` when none is, else
    ``partially_degraded``; an ExternalService's is ``not_available`` (no proxy serves it)."""
    total: Counter[str] = Counter()
    online: Counter[str] = Counter()
    for d in dataplanes:
        serving = is_online(insight(d))
        for s in dataplane_services(d):
            total[s] += 1
            online[s] += int(serving)
    out: dict[str, dict[str, Any]] = {}
    for s, n in total.items():
        ups = online[s]
        status = "online" if ups == n else "offline" if ups == 0 else "partially_degraded"
        counts = _state(n, ups)
        out[s] = {"type": "ServiceInsight", "mesh": mesh, "name": s, "status": status, "dataplanes": counts}
        out[s]["serviceType"] = "internal"
    for e in external_services:
        s = e.spec.tags.get(SERVICE_TAG)
        if s is None or s in out:
            continue
        out[s] = {
            "type": "ServiceInsight",
            "mesh": mesh,
            "name": s,
            "status": "not_available",
            "dataplanes": {},
            "serviceType": "external",
            "addressPort": e.spec.networking.address,
        }
    return [out[s] for s in sorted(out)]


PolicyKey = tuple[str, str]
"""A policy by ``(type, name)``, as ``ProxyExplanation`` names it."""


def dataplane_inspect(explanation: ProxyExplanation, policies: Mapping[PolicyKey, Resource[Any]]) -> dict[str, Any]:
    """Kuma's answer to ``kumactl inspect dataplane NAME`` (a sidecar's policies by attachment), from
    Atoll's explanation of the proxy: one ``inbound`` entry per served inbound and one ``outbound``
    entry per outbound (``name`` ``address:port``, the ``service``), each with ``matchedPolicies``:
    per policy kind, the policies whose items apply there (merge order, each once, as stored
    resources), route-targeted ones included. Policies that select the proxy but shape none of its
    inbounds or outbounds are listed under one ``dataplane`` entry. ``policies`` holds every policy
    the explanation names."""
    items: list[dict[str, Any]] = []
    placed: set[PolicyKey] = set()
    for traffic in (*explanation.inbounds, *explanation.outbounds):
        kinds = [*traffic.kinds, *(k for route in traffic.routes for k in route.kinds)]
        matched: dict[str, list[str]] = {}
        for kind in kinds:
            names = matched.setdefault(kind.kind, [])
            names += [c.policy for c in kind.contributions if c.policy not in names]
        placed |= {(kind, name) for kind, names in matched.items() for name in names}
        items.append(
            _attachment(traffic.direction, f"{traffic.address}:{traffic.port}", traffic.service, matched, policies)
        )
    rest: dict[str, list[str]] = {}
    for p in explanation.policies:
        if (p.type, p.name) not in placed:
            rest.setdefault(p.type, []).append(p.name)
    if rest:
        items.insert(0, _attachment("dataplane", "", "", rest, policies))
    return {"kind": "SidecarDataplane", "total": len(items), "items": items}


def _attachment(
    kind: str, name: str, service: str, matched: Mapping[str, list[str]], policies: Mapping[PolicyKey, Resource[Any]]
) -> dict[str, Any]:
    by_kind = {k: [encode(policies[(k, n)]) for n in names] for k, names in matched.items() if names}
    return {"type": kind, "name": name, "service": service, "matchedPolicies": by_kind}
