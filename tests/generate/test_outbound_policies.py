"""Traffic policies -> Envoy: golden files (testdata/policies/), ``envoy --mode validate``, and
unit tests of the translations (locality priorities, RBAC construction)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from envoy.config.rbac.v3 import rbac_pb2

from atoll.topology import IdentityRules, Permission, Tags, proxy_view
from atoll.topology.settings.load_balancing import LoadBalancingSettings
from atoll.xds.generate import sidecar_resources
from atoll.xds.generate.policies import zone_priorities
from atoll.xds.generate.rbac import rbac_rules
from tests.generate.certs import fixed_identity
from tests.generate.envoy_validate import assert_valid, static_bootstrap
from tests.generate.golden import assert_golden, load_mesh_view


def _policy(kind: str, name: str, body: str) -> str:
    return f"---\ntype: {kind}\nmesh: default\nname: {name}\nspec:\n{body}"


HEALTH_CHECK = _policy(
    "MeshHealthCheck",
    "hc",
    """  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default:
        interval: 10s
        timeout: 2s
        unhealthyThreshold: 3
        healthyThreshold: 1
        healthyPanicThreshold: 60
        tcp: {send: cGluZw==, receive: [cG9uZw==]}
    - targetRef: {kind: MeshService, name: backend}
      default:
        http:
          path: /health
          expectedStatuses: [200, 204]
          requestHeadersToAdd:
            set: [{name: x-check, value: atoll}]
""",
)

CIRCUIT_BREAKER = _policy(
    "MeshCircuitBreaker",
    "cb",
    """  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default:
        connectionLimits: {maxConnections: 100, maxPendingRequests: 50, maxRequests: 200, maxRetries: 3}
        outlierDetection:
          interval: 2s
          detectors:
            gatewayFailures: {consecutive: 7}
            successRate: {minimumHosts: 3, requestVolume: 20, standardDeviationFactor: "1.9"}
  from:
    - targetRef: {kind: Mesh}
      default:
        connectionLimits: {maxConnections: 10}
        outlierDetection: {disabled: true}
""",
)

TIMEOUT = _policy(
    "MeshTimeout",
    "timeouts",
    """  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default:
        connectionTimeout: 2s
        idleTimeout: 30s
        http: {requestTimeout: 3s, streamIdleTimeout: 10s, maxStreamDuration: 1m}
  from:
    - targetRef: {kind: Mesh}
      default:
        idleTimeout: 1m
        http: {requestTimeout: 4s, requestHeadersTimeout: 500ms}
""",
)

RETRY = _policy(
    "MeshRetry",
    "retry",
    """  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default:
        tcp: {maxConnectAttempt: 3}
        http:
          numRetries: 2
          perTryTimeout: 1s
          backOff: {baseInterval: 100ms, maxInterval: 1s}
          retryOn: [5xx, GatewayError, "503", HttpMethodGet]
          hostSelection: [{predicate: OmitPreviousHosts}]
""",
)

LOAD_BALANCING = _policy(
    "MeshLoadBalancingStrategy",
    "lb",
    """  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      default:
        loadBalancer:
          type: RingHash
          ringHash:
            hashFunction: MurmurHash2
            minRingSize: 64
            hashPolicies: [{type: Header, header: {name: x-user}}]
        localityAwareness:
          crossZone:
            failover:
              - from: {zones: [zone-9]}
                to: {type: Any}
              - to: {type: Only, zones: [zone-3]}
              - to: {type: AnyExcept, zones: [zone-5]}
            failoverThreshold: {percentage: 50}
    - targetRef: {kind: MeshService, name: db}
      default:
        loadBalancer: {type: LeastRequest, leastRequest: {choiceCount: 3}}
""",
)

MORE_ZONES = "".join(
    f"""---
type: ZoneIngress
name: ingress-{zone}
zone: {zone}
networking:
  address: 10.9.0.{i}
  advertisedAddress: 203.0.113.{i}
  advertisedPort: 10001
availableServices:
  - tags: {{kuma.io/service: backend, kuma.io/protocol: http}}
    instances: {i}
    mesh: default
"""
    for i, zone in ((3, "zone-3"), (4, "zone-4"), (5, "zone-5"))
)

CASES = {
    "health-check-web-1": (HEALTH_CHECK, "web-1"),
    "circuit-breaker-web-1": (CIRCUIT_BREAKER, "web-1"),
    "circuit-breaker-backend-1": (CIRCUIT_BREAKER, "backend-1"),
    "timeout-web-1": (TIMEOUT, "web-1"),
    "timeout-backend-1": (TIMEOUT, "backend-1"),
    "retry-web-1": (RETRY, "web-1"),
    "load-balancing-web-1": (LOAD_BALANCING + MORE_ZONES, "web-1"),
}


def _resources(case: str) -> Any:
    extra, proxy = CASES[case]
    return sidecar_resources(proxy_view(load_mesh_view("mesh-mtls.yaml", extra=extra), proxy), fixed_identity())


@pytest.mark.parametrize("case", list(CASES))
def test_policy_golden(case: str) -> None:
    resources = _resources(case)
    assert resources.check_consistent() == []
    rendered = resources.to_dict()
    del rendered["secrets"]  # the same in every case (see testdata/mtls/)
    assert_golden(f"policies/{case}.yaml", rendered)


@pytest.mark.envoy
@pytest.mark.parametrize("case", list(CASES))
def test_policy_config_passes_envoy_validate(case: str, tmp_path: Path) -> None:
    assert_valid(static_bootstrap(_resources(case)), tmp_path)


def test_ingress_clusters_get_outlier_detection_by_default() -> None:
    res = sidecar_resources(proxy_view(load_mesh_view("mesh-mtls.yaml"), "web-1"), fixed_identity())
    clusters = {c.name: c for c in res.clusters}
    od = clusters["backend"].outlier_detection  # backend has a zone-2 ingress endpoint
    assert (od.consecutive_5xx.value, od.consecutive_gateway_failure.value) == (3, 3)
    assert (od.enforcing_consecutive_5xx.value, od.enforcing_consecutive_gateway_failure.value) == (100, 100)
    assert od.interval.seconds == 1 and od.max_ejection_percent.value == 100
    assert not clusters["db"].HasField("outlier_detection")  # local endpoints only
    (cla,) = [c for c in res.cluster_load_assignments if c.cluster_name == "backend"]
    assert [
        (g.locality.zone, g.priority, [e.load_balancing_weight.value for e in g.lb_endpoints]) for g in cla.endpoints
    ] == [
        ("zone-1", 0, [0]),
        ("zone-2", 0, [3]),
    ]


def test_circuit_breaker_tunes_and_disables_the_ingress_default() -> None:
    tuned = _policy(
        "MeshCircuitBreaker",
        "cb",
        "  targetRef: {kind: Mesh}\n  to:\n    - targetRef: {kind: MeshService, name: backend}\n"
        "      default: {outlierDetection: {baseEjectionTime: 30s, detectors: {totalFailures: {consecutive: 10}}}}\n",
    )
    res = sidecar_resources(proxy_view(load_mesh_view("mesh-mtls.yaml", extra=tuned), "web-1"), fixed_identity())
    od = next(c for c in res.clusters if c.name == "backend").outlier_detection
    assert (od.consecutive_5xx.value, od.consecutive_gateway_failure.value, od.base_ejection_time.seconds) == (
        10,
        3,
        30,
    )
    off = tuned.replace("baseEjectionTime: 30s, ", "disabled: true, ")
    res = sidecar_resources(proxy_view(load_mesh_view("mesh-mtls.yaml", extra=off), "web-1"), fixed_identity())
    assert not next(c for c in res.clusters if c.name == "backend").HasField("outlier_detection")


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({}, None),
        ({"localityAwareness": {"disabled": True}}, None),
        ({"localityAwareness": {}}, (((("a", 0), ("b", 1), ("c", 1))), None)),
        (
            {
                "localityAwareness": {
                    "crossZone": {
                        "failover": [{"to": {"type": "Only", "zones": ["c"]}}, {"to": {"type": "None"}}],
                        "failoverThreshold": {"percentage": "80"},
                    }
                }
            },
            ((("a", 0), ("c", 1)), 125),
        ),
        (
            {"localityAwareness": {"crossZone": {"failover": [{"from": {"zones": ["x"]}, "to": {"type": "Any"}}]}}},
            ((("a", 0),), None),
        ),
    ],
)
def test_zone_priorities(conf: dict[str, Any], expected: Any) -> None:
    assert zone_priorities(LoadBalancingSettings.from_conf(conf), "a", ["c", "b", "a", "c"]) == expected


def test_mesh_locality_aware_flag_without_policy() -> None:
    assert zone_priorities(LoadBalancingSettings.from_conf({}), "a", ["b"], mesh_locality_aware=True) == (
        (("a", 0), ("b", 1)),
        None,
    )


# -- the RBAC construction gives exactly "last matching permission wins" ------------------------------


def _principal_matches(p: rbac_pb2.Principal, uris: set[str]) -> bool:
    kind = p.WhichOneof("identifier")
    if kind == "and_ids":
        return all(_principal_matches(q, uris) for q in p.and_ids.ids)
    if kind == "or_ids":
        return any(_principal_matches(q, uris) for q in p.or_ids.ids)
    if kind == "not_id":
        return not _principal_matches(p.not_id, uris)
    assert kind == "authenticated"
    m = p.authenticated.principal_name
    return any(u == m.exact if m.HasField("exact") else u.startswith(m.prefix) for u in uris)


def _allowed(rbac: rbac_pb2.RBAC, uris: set[str]) -> bool:
    assert rbac.action == rbac_pb2.RBAC.ALLOW
    return any(any(_principal_matches(pr, uris) for pr in pol.principals) for pol in rbac.policies.values())


def _expected(perms: list[Permission], tags: dict[str, set[str]], *, shadow: bool) -> bool:
    allowing = {"Allow"} if shadow else {"Allow", "AllowWithShadowDeny"}
    result = False
    for p in perms:
        if all(v in tags.get(k, set()) for k, v in p.source.items()):
            result = p.action in allowing
    return result


SOURCES = [
    Tags(),
    Tags({"kuma.io/service": "web"}),
    Tags({"kuma.io/service": "api"}),
    Tags({"kuma.io/zone": "z2"}),
    Tags({"kuma.io/service": "web", "kuma.io/zone": "z2"}),
]
ACTIONS = ["Allow", "Deny", "AllowWithShadowDeny"]


@pytest.mark.parametrize("length", [1, 2, 3])
def test_rbac_gives_the_action_of_the_last_matching_permission(length: int) -> None:
    callers = [
        {"kuma.io/service": {svc}, "kuma.io/zone": {zone}}
        for svc, zone in itertools.product(["web", "api", "db"], ["z1", "z2"])
    ]
    checked = 0
    for sources in itertools.product(SOURCES, repeat=length):
        for actions in itertools.product(ACTIONS, repeat=length):
            perms = [
                Permission(source=s, action=a, policy=f"p{i}")
                for i, (s, a) in enumerate(zip(sources, actions, strict=True))
            ]
            for shadow in (False, True):
                rbac = rbac_rules("default", perms, shadow=shadow)
                for caller in callers:
                    uris = {f"spiffe://default/{s}" for s in caller["kuma.io/service"]} | {
                        f"kuma://kuma.io/zone/{z}" for z in caller["kuma.io/zone"]
                    }
                    assert _allowed(rbac, uris) == _expected(perms, caller, shadow=shadow), (perms, caller, shadow)
                    checked += 1
    assert checked > 0


RULE_SETS = [
    IdentityRules(),
    IdentityRules(deny=(("Exact", "spiffe://default/web"),)),
    IdentityRules(allow=(("Prefix", "spiffe://default/"),), deny=(("Exact", "spiffe://default/db"),)),
    IdentityRules(allow_with_shadow_deny=(("Exact", "spiffe://default/api"),)),
    IdentityRules(
        allow=(("Exact", "spiffe://default/db"),), allow_with_shadow_deny=(("Prefix", "spiffe://default/w"),)
    ),
]


def _expected_with_rules(
    rules: IdentityRules, perms: list[Permission], caller: dict[str, set[str]], uris: set[str], *, shadow: bool
) -> bool:
    def hit(ms: tuple[tuple[str, str], ...]) -> bool:
        return any(u == v if t == "Exact" else u.startswith(v) for t, v in ms for u in uris)

    if hit(rules.deny) or (shadow and hit(rules.allow_with_shadow_deny)):
        return False
    if hit(rules.allow) or (not shadow and hit(rules.allow_with_shadow_deny)):
        return True
    return _expected(perms, caller, shadow=shadow)


@pytest.mark.parametrize("rules", RULE_SETS)
def test_rbac_identity_rules_come_first(rules: IdentityRules) -> None:
    for sources in itertools.product(SOURCES, repeat=2):
        for actions in itertools.product(ACTIONS, repeat=2):
            pairs = enumerate(zip(sources, actions, strict=True))
            perms = [Permission(source=s, action=a, policy=f"p{i}") for i, (s, a) in pairs]
            for shadow in (False, True):
                rbac = rbac_rules("default", perms, rules, shadow=shadow)
                for svc, zone in itertools.product(["web", "api", "db"], ["z1", "z2"]):
                    caller = {"kuma.io/service": {svc}, "kuma.io/zone": {zone}}
                    uris = {f"spiffe://default/{svc}", f"kuma://kuma.io/zone/{zone}"}
                    want = _expected_with_rules(rules, perms, caller, uris, shadow=shadow)
                    assert _allowed(rbac, uris) == want, (rules, perms, caller, shadow)


def test_no_permission_denies_everyone() -> None:
    assert not _allowed(rbac_rules("default", []), {"spiffe://default/web"})
