"""MeshFaultInjection and MeshRateLimit -> Envoy (inbound): golden files (testdata/policies/),
``envoy --mode validate`` on each, and unit tests of the translations (percentages, caller
patterns, fault rules per source, rate-limit merging)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.type.v3 import percent_pb2

from atoll.topology import Tags, proxy_view
from atoll.topology.settings.fault_injection import (
    FaultInjectionSettings,
    identity_regex,
    serialize_tags,
    source_regex,
    source_tags,
)
from atoll.xds.generate import sidecar_resources
from atoll.xds.generate.envoy import HCM_FILTER
from atoll.xds.generate.policies.fault_injection import fractional_percent
from tests.generate.certs import fixed_identity
from tests.generate.envoy_validate import assert_valid, static_bootstrap
from tests.generate.golden import assert_golden, load_mesh_view


def _policy(kind: str, name: str, body: str) -> str:
    return f"---\ntype: {kind}\nmesh: default\nname: {name}\nspec:\n{body}"


FAULTS = _policy(
    "MeshFaultInjection",
    "faults",
    """  targetRef: {kind: MeshService, name: backend}
  from:
    - targetRef: {kind: Mesh}
      default:
        http:
          - abort: {httpStatus: 503, percentage: 50}
            delay: {value: 300ms, percentage: "2.5"}
          - responseBandwidth: {limit: 1Mbps, percentage: "33.3333"}
    - targetRef: {kind: MeshService, name: web}
      default:
        http:
          - delay: {value: 1s, percentage: 100}
""",
)

FAULTS_MESH_ONLY = _policy(
    "MeshFaultInjection",
    "faults",
    """  targetRef: {kind: Mesh}
  from:
    - targetRef: {kind: Mesh}
      default:
        http:
          - abort: {httpStatus: 500, percentage: 10}
""",
)

RATE_LIMIT = _policy(
    "MeshRateLimit",
    "limits",
    """  targetRef: {kind: Mesh}
  from:
    - targetRef: {kind: Mesh}
      default:
        local:
          http:
            requestRate: {num: 5, interval: 10s}
            onRateLimit:
              status: 429
              headers:
                add: [{name: x-limited, value: "yes"}]
                set: [{name: retry-after, value: "10"}]
          tcp:
            connectionRate: {num: 3, interval: 10s}
""",
) + _policy(
    "MeshRateLimit",
    "backend-limits",
    """  targetRef: {kind: MeshService, name: backend}
  from:
    - targetRef: {kind: Mesh}
      default:
        local:
          http: {requestRate: {num: 100, interval: 1s}}
          tcp: {disabled: true}
""",
)

FAULTS_BY_IDENTITY = _policy(
    "MeshFaultInjection",
    "by-identity",
    """  targetRef: {kind: MeshService, name: backend}
  rules:
    - default:
        http:
          - delay: {value: 300ms, percentage: 100}
    - matches:
        - spiffeID: {type: Exact, value: "spiffe://default/web"}
        - spiffeID: {type: Prefix, value: "spiffe://default/adm"}
      default:
        http:
          - abort: {httpStatus: 418, percentage: 100}
""",
)

CASES = {
    # backend-1 (http) gets faults per caller; web-1 reaches backend and sends its tags.
    "fault-injection-backend-1": (FAULTS, "backend-1"),
    "fault-injection-web-1": (FAULTS, "web-1"),
    "fault-injection-mesh-backend-1": (FAULTS_MESH_ONLY, "backend-1"),
    "fault-injection-mesh-db-1": (FAULTS_MESH_ONLY, "db-1"),  # TCP: no fault filter
    "fault-injection-identity-backend-1": (FAULTS_BY_IDENTITY, "backend-1"),
    "rate-limit-backend-1": (RATE_LIMIT, "backend-1"),
    "rate-limit-web-1": (RATE_LIMIT, "web-1"),
    "rate-limit-db-1": (RATE_LIMIT, "db-1"),
}


def _resources(case: str) -> Any:
    extra, proxy = CASES[case]
    return sidecar_resources(proxy_view(load_mesh_view("mesh-mtls.yaml", extra=extra), proxy), fixed_identity())


@pytest.mark.parametrize("case", list(CASES))
def test_inbound_policy_golden(case: str) -> None:
    resources = _resources(case)
    assert resources.check_consistent() == []
    rendered = resources.to_dict()
    del rendered["secrets"]  # the same in every case (see testdata/mtls/)
    assert_golden(f"policies/{case}.yaml", rendered)


@pytest.mark.envoy
@pytest.mark.parametrize("case", list(CASES))
def test_inbound_policy_config_passes_envoy_validate(case: str, tmp_path: Path) -> None:
    assert_valid(static_bootstrap(_resources(case)), tmp_path)


@pytest.mark.parametrize(
    ("text", "numerator", "denominator"),
    [
        ("50", 50, percent_pb2.FractionalPercent.HUNDRED),
        ("0", 0, percent_pb2.FractionalPercent.HUNDRED),
        ("2.5", 250, percent_pb2.FractionalPercent.TEN_THOUSAND),
        ("62.9", 6290, percent_pb2.FractionalPercent.TEN_THOUSAND),
        ("33.3333", 333333, percent_pb2.FractionalPercent.MILLION),
        ("0.00001", 0, percent_pb2.FractionalPercent.MILLION),
    ],
)
def test_fractional_percent(text: str, numerator: int, denominator: int) -> None:
    got = fractional_percent(text)
    assert (got.numerator, got.denominator) == (numerator, denominator)


def test_caller_tags_header_and_source_patterns() -> None:
    header = serialize_tags(
        source_tags([{"kuma.io/service": "web", "version": "v1"}, {"kuma.io/service": "admin", "team": "a.b"}])
    )
    assert header == "&kuma.io/service=admin,web&team=a.b&version=v1&"

    def matches(source: dict[str, str]) -> bool:
        return re.fullmatch(source_regex(source), header) is not None

    assert matches({"kuma.io/service": "web"})
    assert matches({"kuma.io/service": "admin"})
    assert matches({"kuma.io/service": "web", "version": "v1"})
    assert matches({"team": "a.b", "version": "v1"})
    assert not matches({"kuma.io/service": "we"})  # a value is matched whole
    assert not matches({"kuma.io/service": "eb"})
    assert not matches({"team": "aXb"})  # the dot is literal
    assert not matches({"version": "v2"})
    assert not matches({"kuma.io/service": "web", "version": "v2"})
    assert not matches({"zone": "z1"})


def _item(kind: str, http: list[dict[str, Any]] | None, **ref: Any) -> dict[str, Any]:
    return {"targetRef": {"kind": kind, **ref}, "default": {} if http is None else {"http": http}}


ABORT = [{"abort": {"httpStatus": 500, "percentage": 10}}]
DELAY = [{"delay": {"value": "1s", "percentage": 50}}]


def test_fault_rules_are_disjoint_and_the_last_matching_source_wins() -> None:
    settings = FaultInjectionSettings.fold(
        [
            _item("Mesh", ABORT),
            _item("MeshService", DELAY, name="web"),
            _item("MeshSubset", None, tags={"version": "v2"}),  # no http: changes nothing
            _item("MeshServiceSubset", [], name="web", tags={"version": "v1"}),  # no faults for web v1
        ]
    )
    web, web_v1 = Tags({"kuma.io/service": "web"}), Tags({"kuma.io/service": "web", "version": "v1"})
    assert [(r.source, r.not_sources, len(r.faults)) for r in settings.rules] == [
        (Tags({}), (web, web_v1), 1),
        (web, (web_v1,), 1),
        (web_v1, (), 0),
    ]
    assert settings.by_source
    assert settings.rules[0].faults[0].abort_status == 500
    assert settings.rules[1].faults[0].delay == 1.0


def test_fault_items_overridden_for_every_caller_are_dropped() -> None:
    settings = FaultInjectionSettings.fold([_item("MeshService", ABORT, name="web"), _item("Mesh", DELAY)])
    assert [(r.source, r.not_sources) for r in settings.rules] == [(Tags({}), ())]
    assert not settings.by_source
    # Sources that cannot both match one caller do not exclude each other.
    settings = FaultInjectionSettings.fold(
        [_item("MeshService", ABORT, name="web"), _item("MeshService", DELAY, name="admin")]
    )
    assert [r.not_sources for r in settings.rules] == [(), ()]


def _listener(resources: Any, prefix: str) -> Any:
    (listener,) = [ln for ln in resources.listeners if ln.name.startswith(prefix)]
    return listener


def _hcm(listener: Any) -> hcm_pb2.HttpConnectionManager:
    manager = hcm_pb2.HttpConnectionManager()
    (f,) = [f for f in listener.filter_chains[0].filters if f.name == HCM_FILTER]
    f.typed_config.Unpack(manager)
    return manager


def test_caller_tags_only_when_a_fault_policy_tells_callers_apart() -> None:
    tagged = _hcm(_listener(_resources("fault-injection-web-1"), "outbound:127.0.0.1:10001"))
    (header,) = tagged.route_config.request_headers_to_add
    assert (header.header.key, header.header.value) == ("x-kuma-tags", "&kuma.io/protocol=http&kuma.io/service=web&")
    # A Mesh-wide source needs no tags: outbound listeners stay as without the policy.
    plain = sidecar_resources(proxy_view(load_mesh_view("mesh-mtls.yaml"), "web-1"), fixed_identity())
    mesh_only = sidecar_resources(
        proxy_view(load_mesh_view("mesh-mtls.yaml", extra=FAULTS_MESH_ONLY), "web-1"), fixed_identity()
    )
    assert [ln for ln in mesh_only.listeners if ln.name.startswith("outbound")] == [
        ln for ln in plain.listeners if ln.name.startswith("outbound")
    ]


def test_fault_filters_run_before_the_rate_limit_and_the_router() -> None:
    both = FAULTS_MESH_ONLY + RATE_LIMIT
    res = sidecar_resources(proxy_view(load_mesh_view("mesh-mtls.yaml", extra=both), "backend-1"), fixed_identity())
    manager = _hcm(_listener(res, "inbound"))
    assert [f.name for f in manager.http_filters] == [
        "envoy.filters.http.rbac",
        "envoy.filters.http.fault",
        "envoy.filters.http.local_ratelimit",
        "envoy.filters.http.router",
    ]
    fault = fault_pb2.HTTPFault()
    manager.http_filters[1].typed_config.Unpack(fault)
    assert fault.abort.http_status == 500 and not fault.headers


def _rule(matches: list[tuple[str, str]], http: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {
        "matches": [{"spiffeID": {"type": kind, "value": value}} for kind, value in matches],
        "default": {} if http is None else {"http": http},
    }


def test_identity_rules_are_most_specific_and_exclude_each_other() -> None:
    web, prefix = ("Exact", "spiffe://default/web"), ("Prefix", "spiffe://default/")
    settings = FaultInjectionSettings.fold(
        [
            _item("Mesh", ABORT),
            _rule([web], DELAY),  # Exact: more specific than the Prefix that comes later
            _rule([prefix], ABORT),
            _rule([("Exact", "spiffe://default/other")], None),  # no http: changes nothing
            _item("MeshService", DELAY, name="admin"),
        ]
    )
    assert [(r.source, r.identity, r.not_identities) for r in settings.rules] == [
        (Tags({}), None, (prefix, web)),  # every caller but those the SPIFFE rules claim
        (Tags({"kuma.io/service": "admin"}), None, (prefix, web)),
        (Tags({}), prefix, (web,)),
        (Tags({}), web, ()),
    ]
    assert [r.faults[0].abort_status for r in settings.rules] == [500, None, 500, None]
    assert settings.by_identity and settings.by_source
    # the same match twice: the later one wins for every caller, the earlier is dropped; a rule
    # with two matches is two rules; longer prefixes are more specific
    settings = FaultInjectionSettings.fold(
        [_rule([web, ("Prefix", "spiffe://default/a")], ABORT), _rule([web], DELAY), _rule([prefix], DELAY)]
    )
    assert [(r.identity, len(r.not_identities), r.faults[0].delay) for r in settings.rules] == [
        (prefix, 2, 1.0),
        (("Prefix", "spiffe://default/a"), 1, None),
        (web, 0, 1.0),
    ]
    assert not FaultInjectionSettings.fold([_item("Mesh", ABORT), _rule([web], None)]).by_identity


def test_identity_pattern_on_the_client_cert_header() -> None:
    """Envoy writes ``By=<own SANs>;Hash=<hex>;URI=<caller SAN>;URI=<caller SAN>``: a match is
    checked against each of the caller's URI SANs whole (Exact) or as a prefix, never ``By``."""
    xfcc = "By=spiffe://default/backend;Hash=ab12;URI=spiffe://default/web;URI=kuma://version/v1"

    def matches(kind: str, value: str, header: str = xfcc) -> bool:
        return re.fullmatch(identity_regex((kind, value)), header) is not None  # type: ignore[arg-type]

    assert matches("Exact", "spiffe://default/web")
    assert matches("Exact", "kuma://version/v1")
    assert matches("Prefix", "spiffe://default/")
    assert matches("Prefix", "spiffe://default/we")
    assert not matches("Exact", "spiffe://default/we")  # whole value
    assert not matches("Exact", "spiffe://default/backend")  # our own certificate (By=)
    assert not matches("Prefix", "spiffe://other/")
    assert not matches("Exact", "spiffe://default.web")  # the dot is literal
    assert not matches("Prefix", "spiffe://default/", "")  # no certificate, no header


def test_identity_faults_make_the_inbound_read_and_remove_the_client_cert_header() -> None:
    manager = _hcm(_listener(_resources("fault-injection-identity-backend-1"), "inbound"))
    assert manager.forward_client_cert_details == hcm_pb2.HttpConnectionManager.SANITIZE_SET
    assert manager.set_current_client_cert_details.uri
    assert list(manager.route_config.request_headers_to_remove) == ["x-forwarded-client-cert"]
    # without identity rules the inbound does not touch the header (Envoy's default: SANITIZE)
    manager = _hcm(_listener(_resources("fault-injection-mesh-backend-1"), "inbound"))
    assert manager.forward_client_cert_details == hcm_pb2.HttpConnectionManager.SANITIZE
    assert not manager.route_config.request_headers_to_remove


def test_rate_limit_set_values_split_on_commas_as_kuma() -> None:
    from atoll.topology.settings.rate_limit import RateLimitSettings

    conf = {"local": {"http": {"onRateLimit": {"headers": {"set": [{"name": "x", "value": "a, b"}]}}}}}
    http = RateLimitSettings.from_conf(conf).http
    assert http is not None and http.set_headers == (("x", "a"), ("x", " b"))
