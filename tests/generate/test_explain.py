"""``atoll.topology.explain``: per inbound/outbound, which policies apply, in merge order, and what
they fold into — checked against ``proxy_view`` so inspection cannot drift from what Envoy gets."""

from __future__ import annotations

import dataclasses

from atoll.topology import InboundView, MeshView, OutboundView, PolicySettings, proxy_view
from atoll.topology.enforcement import not_enforced_kinds
from atoll.topology.explain import explain_proxy, policy_reach, to_json
from atoll.topology.settings.timeout import TimeoutSettings
from tests.generate.golden import load_mesh_view

# Overlapping MeshTimeouts on web-1's outbound to backend, least to most specific:
#   b-mesh (Mesh, name sorts last) < a-mesh (Mesh) < svc-web (MeshService web) < dp-web (Dataplane web-1);
# inside each policy its to[] items: Mesh before MeshService backend.
POLICIES = """---
type: MeshTimeout
mesh: default
name: a-mesh
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default: {connectionTimeout: 2s}
---
type: MeshTimeout
mesh: default
name: b-mesh
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      default: {idleTimeout: 30s}
    - targetRef: {kind: Mesh}
      default: {connectionTimeout: 1s, idleTimeout: 10s}
---
type: MeshTimeout
mesh: default
name: svc-web
spec:
  targetRef: {kind: MeshService, name: web}
  to:
    - targetRef: {kind: MeshService, name: backend}
      default: {http: {requestTimeout: 5s}}
  from:
    - targetRef: {kind: Mesh}
      default: {idleTimeout: 20s}
---
type: MeshTimeout
mesh: default
name: dp-web
spec:
  targetRef: {kind: Dataplane, name: web-1}
  to:
    - targetRef: {kind: Mesh}
      default: {connectionTimeout: 3s}
---
type: MeshRetry
mesh: default
name: retry-backend
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      default: {http: {numRetries: 4}}
---
type: MeshTrafficPermission
mesh: default
name: allow-all
spec:
  targetRef: {kind: Mesh}
  from:
    - targetRef: {kind: Mesh}
      default: {action: Allow}
---
type: MeshTrafficPermission
mesh: default
name: deny-db
spec:
  targetRef: {kind: MeshService, name: web}
  from:
    - targetRef: {kind: MeshService, name: db}
      default: {action: Deny}
---
type: MeshFaultInjection
mesh: default
name: faults
spec:
  targetRef: {kind: MeshService, name: backend}
  from:
    - targetRef: {kind: Mesh}
      default: {http: [{abort: {httpStatus: 503, percentage: 50}}]}
---
type: MeshAccessLog
mesh: default
name: logs
spec:
  targetRef: {kind: MeshService, name: backend}
  from:
    - targetRef: {kind: Mesh}
      default: {backends: [{type: File, file: {path: /tmp/access.log}}]}
---
type: MeshHTTPRoute
mesh: default
name: route-backend
spec:
  targetRef: {kind: MeshService, name: web}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /api}}]
          default:
            filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-api, value: "1"}]}}]
---
type: MeshTimeout
mesh: default
name: on-route
spec:
  targetRef: {kind: MeshHTTPRoute, name: route-backend}
  to:
    - targetRef: {kind: MeshService, name: backend}
      default: {http: {requestTimeout: 9s}}
"""


def _view() -> MeshView:
    return load_mesh_view("mesh-mtls.yaml", extra=POLICIES)


def _explain(view: MeshView, name: str):  # type: ignore[no-untyped-def]
    return explain_proxy(view.index.dataplanes[name], view.index.policies)


def test_contributors_in_merge_order_and_merged_settings() -> None:
    found = _explain(_view(), "web-1")
    backend = next(o for o in found.outbounds if o.service == "backend")
    timeout = next(k for k in backend.kinds if k.kind == "MeshTimeout")
    # Item rank first (Mesh items, then MeshService items), policy order inside a rank.
    assert [(c.policy, dict(c.target_ref or {})) for c in timeout.contributions] == [
        ("b-mesh", {"kind": "Mesh"}),
        ("a-mesh", {"kind": "Mesh"}),
        ("dp-web", {"kind": "Mesh"}),
        ("b-mesh", {"kind": "MeshService", "name": "backend"}),
        ("svc-web", {"kind": "MeshService", "name": "backend"}),
    ]
    assert {c.section for c in timeout.contributions} == {"to"}
    assert timeout.enforced
    assert timeout.settings.connection_timeout == 3.0  # dp-web's Mesh item, the last with the field
    assert timeout.settings.idle_timeout == 30.0  # b-mesh's MeshService item beats every Mesh item
    assert timeout.settings.http.request_timeout == 5.0
    retry = next(k for k in backend.kinds if k.kind == "MeshRetry")
    assert [c.policy for c in retry.contributions] == ["retry-backend"]
    assert retry.settings.http.num_retries == 4
    db = next(o for o in found.outbounds if o.service == "db")
    assert [k.kind for k in db.kinds] == ["MeshTimeout"]
    assert [c.policy for c in db.kinds[0].contributions] == ["b-mesh", "a-mesh", "dp-web"]
    assert db.kinds[0].settings == TimeoutSettings(connection_timeout=3.0, idle_timeout=10.0)


def test_inbound_kinds_and_permissions() -> None:
    found = _explain(_view(), "web-1")
    (web,) = found.inbounds
    assert (web.service, web.port) == ("web", 8080)
    by_kind = {k.kind: k for k in web.kinds}
    assert set(by_kind) == {"MeshTimeout", "MeshTrafficPermission"}  # the fault targets backend, not web
    assert [(c.policy, c.section) for c in by_kind["MeshTimeout"].contributions] == [("svc-web", "from")]
    perms = by_kind["MeshTrafficPermission"]
    assert [c.policy for c in perms.contributions] == ["allow-all", "deny-db"]
    assert [(p.policy, p.action) for p in perms.settings.permissions] == [("allow-all", "Allow"), ("deny-db", "Deny")]
    names = [(p.type, p.name) for p in found.policies]
    assert ("MeshFaultInjection", "faults") not in names
    assert names.index(("MeshTimeout", "b-mesh")) < names.index(("MeshTimeout", "a-mesh"))


def test_enforced_says_whether_a_generator_reads_the_kind() -> None:
    found = _explain(_view(), "backend-1")
    (backend,) = found.inbounds
    by_kind = {k.kind: k for k in backend.kinds}
    assert [c.policy for c in by_kind["MeshFaultInjection"].contributions] == ["faults"]
    assert by_kind["MeshFaultInjection"].enforced and by_kind["MeshFaultInjection"].settings is not None
    logs = by_kind["MeshAccessLog"]
    assert [(c.policy, c.section) for c in logs.contributions] == [("logs", "from")]
    assert logs.enforced == ("MeshAccessLog" not in not_enforced_kinds())
    assert (logs.settings is None) == ("MeshAccessLog" in not_enforced_kinds())


def test_explanation_agrees_with_proxy_view() -> None:
    """Every inbound's and outbound's settings, folded again from the explanation's contributions in
    the order it lists them, are the ones ``proxy_view`` hands the generators; so are permissions."""
    view = _view()
    for name in view.index.dataplanes:
        found = _explain(view, name)
        proxy = proxy_view(view, name)
        assert [(p.type, p.name) for p in found.policies] == list(proxy.policies)
        served = {(t.service, t.port): t for t in (*proxy.outbounds, *proxy.inbounds)}
        for traffic in (*found.outbounds, *found.inbounds):
            expected = served[(traffic.service, traffic.port)]
            merged = [k for k in traffic.kinds if k.kind != "MeshTrafficPermission" and k.settings is not None]
            given = [v for v in _fields(expected.policies) if v is not None]
            assert sorted(map(repr, (k.settings for k in merged))) == sorted(map(repr, given)), (name, traffic.service)
            for k in merged:
                field = next((v for v in given if type(v) is type(k.settings)), None)
                assert k.settings == field, (name, traffic.service, k.kind)
            if isinstance(expected, OutboundView):
                assert [r.route for r in traffic.routes] == [n for n, _ in expected.route_policies]
                for route, (_, settings) in zip(traffic.routes, expected.route_policies, strict=True):
                    kinds = [k.settings for k in route.kinds if k.settings is not None]
                    assert sorted(map(repr, kinds)) == sorted(map(repr, (v for v in _fields(settings) if v))), route
            perms = [k.settings for k in traffic.kinds if k.kind == "MeshTrafficPermission"]
            if traffic.direction == "inbound":
                assert isinstance(expected, InboundView)
                assert [(p.permissions, p.identity_rules) for p in perms] == (
                    [(expected.permissions, expected.identity_rules)]
                    if expected.permissions or expected.identity_rules
                    else []
                )


def _fields(settings: PolicySettings) -> list[object]:
    return [getattr(settings, f.name) for f in dataclasses.fields(settings) if f.init]


def test_policy_reach_lists_selected_proxies() -> None:
    view = _view()
    policies = {p.name: p for p in view.policies}
    reach = {r.dataplane: r for r in policy_reach(policies["svc-web"], view.dataplanes)}
    assert set(reach) == {"web-1"}
    assert reach["web-1"].inbounds == ("web:8080",)
    assert reach["web-1"].outbounds == ("backend",)
    everywhere = policy_reach(policies["b-mesh"], view.dataplanes)
    assert [r.dataplane for r in everywhere] == sorted(d.name for d in view.dataplanes)
    web = next(r for r in everywhere if r.dataplane == "web-1")
    assert web.outbounds == ("backend", "db") and web.inbounds == ()
    faults = policy_reach(policies["faults"], view.dataplanes)
    assert [(r.dataplane, r.inbounds) for r in faults] == [("backend-1", ("backend:8080",))]


def test_to_json_is_camel_case_and_plain() -> None:
    doc = to_json(_explain(_view(), "web-1"))
    backend = next(o for o in doc["outbounds"] if o["service"] == "backend")
    timeout = next(k for k in backend["kinds"] if k["kind"] == "MeshTimeout")
    assert timeout["settings"]["connectionTimeout"] == 3.0
    assert timeout["contributions"][0] == {
        "policy": "b-mesh",
        "section": "to",
        "targetRef": {"kind": "Mesh"},
        "default": {"connectionTimeout": "1s", "idleTimeout": "10s"},
    }
    assert {"type": "MeshTimeout", "name": "b-mesh"} in doc["policies"]
    assert all(set(p) == {"type", "name"} for p in doc["policies"])


def test_a_global_copy_is_matched_under_its_zone_name() -> None:
    """Global holds zone-1's web-1 as ``web-1-<hash>``: a policy naming Dataplane web-1 still selects it."""
    view = _view()
    web = view.index.dataplanes["web-1"]
    labels = {**web.meta.labels, "kuma.io/origin": "zone", "kuma.io/zone": "zone-1", "kuma.io/display-name": "web-1"}
    copy = web.with_meta(name="web-1-0123abcd", labels=labels)
    found = explain_proxy(copy, view.index.policies)
    assert ("MeshTimeout", "dp-web") in [(p.type, p.name) for p in found.policies]
    assert found.dataplane == "web-1-0123abcd"
    policies = {p.name: p for p in view.policies}
    assert [r.dataplane for r in policy_reach(policies["dp-web"], [copy])] == ["web-1-0123abcd"]
    plain = web.with_meta(name="web-1-0123abcd")  # not a zone's copy: its own name counts
    assert ("MeshTimeout", "dp-web") not in [
        (p.type, p.name) for p in explain_proxy(plain, view.index.policies).policies
    ]


def test_a_policy_targeting_a_route_is_explained_on_that_route() -> None:
    found = _explain(_view(), "web-1")
    backend = next(o for o in found.outbounds if o.service == "backend")
    route_kind = next(k for k in backend.kinds if k.kind == "MeshHTTPRoute")
    assert [c.policy for c in route_kind.contributions] == ["route-backend"]
    assert route_kind.contributions[0].rules is not None and route_kind.enforced
    (route,) = backend.routes
    assert route.route == "route-backend"
    timeout = next(k for k in route.kinds if k.kind == "MeshTimeout")
    assert [c.policy for c in timeout.contributions][-1] == "on-route"  # merged last, on this route only
    assert timeout.settings.http.request_timeout == 9.0
    outside = next(k for k in backend.kinds if k.kind == "MeshTimeout")
    assert "on-route" not in [c.policy for c in outside.contributions]
    policies = {p.name: p for p in _view().policies}
    routes = [p for p in _view().policies if p.type == "MeshHTTPRoute"]
    reach = policy_reach(policies["on-route"], _view().dataplanes, routes)
    assert [(r.dataplane, r.inbounds, r.outbounds) for r in reach] == [("web-1", (), ("backend",))]
    assert policy_reach(policies["on-route"], _view().dataplanes) == []  # without its route: nowhere
