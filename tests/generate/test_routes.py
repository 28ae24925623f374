"""MeshHTTPRoute and MeshTCPRoute -> Envoy: golden files (testdata/routes/), ``envoy --mode validate``,
rule ordering and merging, split clusters (local and remote subsets) and the zone ingress's subsets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from atoll.resources import decode_all
from atoll.topology import MeshView, dependents, proxy_view
from atoll.topology.egress import egress_view
from atoll.topology.ingress import ingress_view
from atoll.xds.generate import sidecar_resources
from atoll.xds.generate.ingress import ingress_resources
from tests.generate.certs import fixed_identity
from tests.generate.envoy_validate import assert_valid, static_bootstrap
from tests.generate.golden import TESTDATA, assert_golden, load_mesh_view


def _policy(kind: str, name: str, body: str, labels: str = "") -> str:
    return f"---\ntype: {kind}\nmesh: default\nname: {name}\n{labels}spec:\n{body}"


# backend v1 (backend-1) and v2 (backend-2) run here; v3 only in zone-3, v2 there too.
VERSIONS = """---
type: Dataplane
mesh: default
name: backend-2
networking:
  address: 10.0.0.3
  inbound:
    - port: 8080
      tags:
        kuma.io/service: backend
        kuma.io/protocol: http
        version: v2
---
type: Dataplane
mesh: default
name: db-replica-1
networking:
  address: 10.0.0.6
  inbound:
    - port: 5432
      tags:
        kuma.io/service: db-replica
---
type: ZoneIngress
name: ingress-zone-3
zone: zone-3
networking:
  address: 10.3.0.1
  advertisedAddress: 203.0.113.3
  advertisedPort: 10001
availableServices:
  - tags: {kuma.io/service: backend, kuma.io/protocol: http, version: v3}
    instances: 2
    mesh: default
  - tags: {kuma.io/service: backend, kuma.io/protocol: http, version: v2}
    instances: 1
    mesh: default
"""

HTTP_ROUTE = _policy(
    "MeshHTTPRoute",
    "http-route",
    """  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /split}}]
          default:
            filters:
              - type: RequestHeaderModifier
                requestHeaderModifier:
                  set: [{name: x-routed, value: "yes"}]
                  add: [{name: x-extra, value: a}]
                  remove: [x-drop]
              - type: ResponseHeaderModifier
                responseHeaderModifier:
                  set: [{name: x-served-by, value: atoll}]
            backendRefs:
              - {kind: MeshServiceSubset, name: backend, tags: {version: v1}, weight: 90}
              - {kind: MeshServiceSubset, name: backend, tags: {version: v2}, weight: 10}
              - {kind: MeshServiceSubset, name: backend, tags: {version: v9}, weight: 0}
        - matches: [{path: {type: Exact, value: /v3}}, {method: POST, headers: [{name: x-v3, value: "1"}]}]
          default:
            backendRefs:
              - {kind: MeshServiceSubset, name: backend, tags: {version: v3}}
        - matches: [{path: {type: RegularExpression, value: "^/re/[0-9]+$"}}]
          default:
            filters:
              - type: RequestMirror
                requestMirror:
                  percentage: "12.5"
                  backendRef: {kind: MeshService, name: missing}
        - matches: [{path: {type: PathPrefix, value: /old}}]
          default:
            filters:
              - type: RequestRedirect
                requestRedirect:
                  scheme: https
                  hostname: example.com
                  port: 8443
                  statusCode: 301
                  path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
        - matches: [{path: {type: PathPrefix, value: /api}}]
          default:
            filters:
              - type: URLRewrite
                urlRewrite:
                  hostname: internal.example
                  path: {type: ReplacePrefixMatch, replacePrefixMatch: /}
        - matches:
            - headers:
                - {type: Present, name: x-present}
                - {type: Absent, name: x-absent}
                - {type: Prefix, name: x-prefix, value: pre}
                - {type: RegularExpression, name: x-re, value: "a.*"}
              queryParams:
                - {type: Exact, name: q, value: one}
                - {type: RegularExpression, name: r, value: "[a-z]+"}
          default:
            backendRefs:
              - {kind: MeshService, name: backend, weight: 0}
""",
)

TCP_ROUTE = _policy(
    "MeshTCPRoute",
    "tcp-route",
    """  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: db}
      rules:
        - default:
            backendRefs:
              - {kind: MeshService, name: db, weight: 20}
              - {kind: MeshService, name: db-replica, weight: 80}
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - default:
            backendRefs:
              - {kind: MeshServiceSubset, name: backend, tags: {version: v2}}
""",
)

OTHER_ROUTE = _policy(
    "MeshHTTPRoute",
    "other-route",
    """  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /other}}]
          default: {}
""",
)

ROUTE_TARGETED = (
    _policy(
        "MeshTimeout",
        "everywhere",
        """  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default: {http: {requestTimeout: 10s}}
""",
    )
    + _policy(
        "MeshTimeout",
        "on-http-route",
        """  targetRef: {kind: MeshHTTPRoute, name: http-route}
  to:
    - targetRef: {kind: Mesh}
      default: {http: {requestTimeout: 2s, streamIdleTimeout: 3s}}
""",
    )
    + _policy(
        "MeshRetry",
        "on-http-route",
        """  targetRef: {kind: MeshHTTPRoute, name: http-route}
  to:
    - targetRef: {kind: Mesh}
      default: {http: {numRetries: 4}}
""",
    )
)

CASES = {
    "http-route-web-1": (VERSIONS + HTTP_ROUTE, "web-1"),
    "tcp-route-web-1": (VERSIONS + TCP_ROUTE, "web-1"),
    "http-and-tcp-route-web-1": (VERSIONS + HTTP_ROUTE + TCP_ROUTE, "web-1"),
    "route-targeted-policies-web-1": (VERSIONS + HTTP_ROUTE + OTHER_ROUTE + ROUTE_TARGETED, "web-1"),
}


def _resources(case: str) -> Any:
    extra, proxy = CASES[case]
    return sidecar_resources(proxy_view(load_mesh_view("mesh-mtls.yaml", extra=extra), proxy), fixed_identity())


@pytest.mark.parametrize("case", list(CASES))
def test_route_golden(case: str) -> None:
    resources = _resources(case)
    assert resources.check_consistent() == []
    rendered = resources.to_dict()
    del rendered["secrets"]  # the same in every case (see testdata/mtls/)
    assert_golden(f"routes/{case}.yaml", rendered)


@pytest.mark.envoy
@pytest.mark.parametrize("case", list(CASES))
def test_route_config_passes_envoy_validate(case: str, tmp_path: Path) -> None:
    assert_valid(static_bootstrap(_resources(case)), tmp_path)


INGRESS = """---
type: ZoneIngress
name: ingress-zone-1
zone: zone-1
networking:
  address: 10.1.0.1
  port: 10001
"""


def _ingress() -> Any:
    view = load_mesh_view("mesh-mtls.yaml", extra=VERSIONS + HTTP_ROUTE)
    zone_ingress = next(r for r in decode_all(INGRESS))
    return ingress_resources(ingress_view("ingress-zone-1", zone_ingress, [view]))


def test_ingress_offers_the_route_subsets_that_run_here() -> None:
    """backend v1 and v2 run in zone-1: the ingress accepts their tagged SNIs (v3 and v9 do not run here)."""
    resources = _ingress()
    assert resources.check_consistent() == []
    assert_golden("routes/ingress-zone-1.yaml", resources.to_dict())
    names = {c.name for c in resources.clusters}
    assert {"default:backend", "default:backend{version=v1}", "default:backend{version=v2}"} <= names
    assert not any("v3" in n or "v9" in n for n in names)


@pytest.mark.envoy
def test_ingress_with_subsets_passes_envoy_validate(tmp_path: Path) -> None:
    assert_valid(static_bootstrap(_ingress()), tmp_path)


def _backend_route(extra: str) -> list[Any]:
    view = proxy_view(load_mesh_view("mesh-mtls.yaml", extra=VERSIONS + extra), "web-1")
    ob = next(o for o in view.outbounds if o.service == "backend")
    assert ob.policies.http_route is not None
    return list(ob.policies.http_route.rules)


def test_rules_with_equal_matches_merge_and_the_more_specific_policy_wins() -> None:
    """Two policies with the same matches (contradictory backends): one rule, the Dataplane-targeted
    policy's backends (more specific than Mesh); the other rules of both are kept, most specific first."""
    mesh_wide = _policy(
        "MeshHTTPRoute",
        "a-mesh-wide",
        """  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /x}}]
          default:
            backendRefs: [{kind: MeshServiceSubset, name: backend, tags: {version: v1}}]
            filters:
              - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: "1"}]}}
        - matches: [{path: {type: PathPrefix, value: /only-mesh}}]
          default: {}
""",
    )
    for_web = _policy(
        "MeshHTTPRoute",
        "z-for-web",
        """  targetRef: {kind: Dataplane, name: web-1}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /x}}]
          default:
            backendRefs: [{kind: MeshServiceSubset, name: backend, tags: {version: v2}}]
        - matches: [{path: {type: PathPrefix, value: /x/longer}}]
          default: {}
""",
    )
    rules = _backend_route(mesh_wide + for_web)
    paths = [r.match.path for r in rules]
    assert paths == ["/only-mesh", "/x/longer", "/x", "/"]  # longer prefixes first
    x = rules[2]
    assert x.backends is not None and [dict(b.tags) for b in x.backends] == [{"version": "v2"}]
    assert x.request_headers is not None and x.request_headers.set == (("x-a", "1"),)  # merged, not replaced


def test_a_rule_matching_everything_replaces_the_catch_all() -> None:
    route = _policy(
        "MeshHTTPRoute",
        "all",
        """  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /}}]
          default:
            backendRefs: [{kind: MeshServiceSubset, name: backend, tags: {version: v2}}]
""",
    )
    rules = _backend_route(route)
    assert len(rules) == 1 and rules[0].backends is not None


def test_policies_targeting_a_route_apply_to_its_rules_only() -> None:
    """MeshTimeout/MeshRetry with top targetRef MeshHTTPRoute ``http-route``: its rules get 2 s and 4
    retries; ``other-route``'s rule and the catch-all keep the mesh-wide 10 s and no retry; the redirect
    stays a redirect."""
    resources = _resources("route-targeted-policies-web-1")
    listener = next(x for x in resources.listeners if x.name.endswith(":10001"))
    manager = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(manager)
    by_match = {}
    for r in manager.route_config.virtual_hosts[0].routes:
        key = r.match.path or r.match.path_separated_prefix or r.match.safe_regex.regex or r.match.prefix
        by_match[key] = r
    assert by_match["/other"].route.timeout.seconds == 10 and not by_match["/other"].route.HasField("retry_policy")
    assert by_match["/"].route.timeout.seconds == 10
    split = by_match["/split"].route
    assert (split.timeout.seconds, split.idle_timeout.seconds, split.retry_policy.num_retries.value) == (2, 3, 4)
    assert by_match["/old"].WhichOneof("action") == "redirect"


def _route_for(ref: str) -> str:
    return _policy(
        "MeshHTTPRoute",
        "selected",
        f"""  targetRef: {ref}
  to:
    - targetRef: {{kind: MeshService, name: db}}
      rules:
        - matches: [{{path: {{type: PathPrefix, value: /x}}}}]
          default: {{}}
""",
    )


@pytest.mark.parametrize(
    ("ref", "applies"),
    [
        ("{kind: Mesh}", True),
        ("{kind: MeshService, name: web}", True),
        ("{kind: MeshService, name: backend}", False),
        ("{kind: MeshSubset, tags: {kuma.io/service: web}}", True),
        ("{kind: MeshSubset, tags: {version: v1}}", False),
    ],
)
def test_the_top_target_ref_selects_the_proxies_a_route_applies_to(ref: str, applies: bool) -> None:
    view = proxy_view(load_mesh_view("mesh-mtls.yaml", extra=_route_for(ref)), "web-1")
    db = next(o for o in view.outbounds if o.service == "db")
    assert (db.policies.http_route is not None) is applies


def test_a_mirror_to_a_missing_service_gets_an_empty_cluster_not_an_error() -> None:
    resources = _resources("http-route-web-1")
    assert "missing" in {c.name for c in resources.clusters}
    cla = next(c for c in resources.cluster_load_assignments if c.cluster_name == "missing")
    assert list(cla.endpoints) == []


def test_the_egress_passes_route_subsets_through_to_the_ingresses_offering_them() -> None:
    view = load_mesh_view("mesh-mtls.yaml", extra=VERSIONS + HTTP_ROUTE)
    egress = decode_all(
        "type: ZoneEgress\nname: egress-1\nzone: zone-1\nnetworking: {address: 10.1.0.2, port: 10002}\n"
    )[0]
    routes = {r.sni: r for r in egress_view("egress-1", egress, [view]).passthrough}
    v3 = routes["backend{mesh=default,version=v3}"]
    assert [(e.address, e.weight) for e in v3.endpoints] == [("203.0.113.3", 2)]
    assert "backend{mesh=default,version=v1}" not in routes  # v1 runs nowhere else


@pytest.mark.parametrize("to", ["{kind: MeshService, name: db}", "{kind: Mesh}"])
def test_proxies_routing_to_a_service_depend_on_it(to: str) -> None:
    """web-1 does not list ``reports`` as an outbound, but its route to db sends there: a change of
    reports' endpoints must reach web-1 (and only the proxies with such a route)."""
    route = _policy(
        "MeshTCPRoute",
        "to-reports",
        f"""  targetRef: {{kind: Mesh}}
  to:
    - targetRef: {to}
      rules:
        - default:
            backendRefs: [{{kind: MeshService, name: reports}}]
""",
    )
    assert "web-1" not in dependents(load_mesh_view("mesh-mtls.yaml"), ["reports"])
    assert "web-1" in dependents(load_mesh_view("mesh-mtls.yaml", extra=route), ["reports"])
    assert "db-1" not in dependents(load_mesh_view("mesh-mtls.yaml", extra=route), ["reports"])  # no outbounds


EXTERNAL = """---
type: ExternalService
mesh: default
name: httpbin
tags: {kuma.io/service: httpbin, kuma.io/protocol: http}
networking: {address: "httpbin.example:443", tls: {enabled: true}}
"""

TO_EXTERNAL = _policy(
    "MeshHTTPRoute",
    "to-external",
    """  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /ext}}]
          default:
            backendRefs: [{kind: MeshService, name: httpbin}]
""",
)


def _external_resources() -> Any:
    resources = decode_all((TESTDATA / "mesh-mtls.yaml").read_text() + EXTERNAL + TO_EXTERNAL)
    view = MeshView(
        mesh=next(r for r in resources if r.type == "Mesh"),
        dataplanes=tuple(r for r in resources if r.type == "Dataplane"),
        zone="zone-1",
        zone_ingresses=tuple(r for r in resources if r.type == "ZoneIngress"),
        policies=tuple(r for r in resources if r.type == "MeshHTTPRoute"),
        external_services=tuple(r for r in resources if r.type == "ExternalService"),
    )
    return sidecar_resources(proxy_view(view, "web-1"), fixed_identity())


def test_a_route_to_an_external_service_gets_its_external_cluster() -> None:
    """web-1 lists no outbound to the ExternalService; the route's backend still gets the cluster an
    outbound would have (to the external address with its own TLS, no ClusterLoadAssignment)."""
    resources = _external_resources()
    assert resources.check_consistent() == []
    cluster = next(c for c in resources.clusters if c.name == "httpbin")
    assert cluster.type != cluster.EDS
    assert "httpbin" not in {c.cluster_name for c in resources.cluster_load_assignments}


@pytest.mark.envoy
def test_a_route_to_an_external_service_passes_envoy_validate(tmp_path: Path) -> None:
    assert_valid(static_bootstrap(_external_resources()), tmp_path)
