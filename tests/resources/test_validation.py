"""Validation rules of the typed models: each bad input gives one error naming its exact field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from atoll.errors import InvalidInput
from atoll.resources import decode
from atoll.resources.base import parse_duration


def _errors(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidInput) as info:
        decode(doc)
    return [(e.path, e.message) for e in info.value.errors]


def _assert_error(doc: dict[str, Any], path: str, fragment: str) -> None:
    errors = _errors(doc)
    assert any(p == path and fragment in m for p, m in errors), f"want {path}: ...{fragment}...; got {errors}"


def timeout(default: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "type": "MeshTimeout",
        "name": "t",
        "mesh": "default",
        "spec": {"to": [{"targetRef": {"kind": "Mesh"}, "default": default}], **spec},
    }


def dataplane(**networking: Any) -> dict[str, Any]:
    net = {"address": "10.0.0.1", "inbound": [{"port": 8080, "tags": {"kuma.io/service": "web"}}], **networking}
    return {"type": "Dataplane", "name": "dp-1", "mesh": "default", "networking": net}


def policy(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "name": "p", "mesh": "default", "spec": spec}


# --- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5), ("1m30s", 90), ("300ms", 0.3), ("0s", 0), ("2h", 7200)])
def test_duration_ok(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    r = decode(timeout({"idleTimeout": text}))
    assert r.spec.to[0].default.idle_timeout == text


@pytest.mark.parametrize("bad", ["5x", "s5", "1m30", "", "-5s"])
def test_duration_rejected(bad: str) -> None:
    _assert_error(
        timeout({"http": {"requestTimeout": bad}}), "spec.to[0].default.http.requestTimeout", "invalid duration"
    )


def test_duration_without_unit_rejected() -> None:
    # YAML reads `5` as an integer: a duration needs a unit.
    _assert_error(timeout({"idleTimeout": 5}), "spec.to[0].default.idleTimeout", 'invalid duration "5"')


def test_duration_error_message_is_exact() -> None:
    assert _errors(timeout({"http": {"requestTimeout": "5x"}})) == [
        ("spec.to[0].default.http.requestTimeout", 'invalid duration "5x"')
    ]


# --- ports, names, tags --------------------------------------------------------------------------


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_port_out_of_range(port: int) -> None:
    doc = dataplane(inbound=[{"port": port, "tags": {"kuma.io/service": "web"}}])
    _assert_error(doc, "networking.inbound[0].port", "out of range 1..65535")


def test_port_must_be_an_integer() -> None:
    doc = dataplane(inbound=[{"port": "80", "tags": {"kuma.io/service": "web"}}])
    _assert_error(doc, "networking.inbound[0].port", "must be an integer")


def test_port_clash_between_inbounds() -> None:
    doc = dataplane(
        inbound=[
            {"port": 8080, "tags": {"kuma.io/service": "a"}},
            {"port": 8080, "tags": {"kuma.io/service": "b"}},
        ]
    )
    assert _errors(doc) == [("networking.inbound[1].port", "8080 is already used by inbound[0]")]


def test_port_clash_between_outbounds() -> None:
    doc = dataplane(
        outbound=[{"port": 10001, "tags": {"kuma.io/service": "a"}}, {"port": 10001, "tags": {"kuma.io/service": "b"}}]
    )
    _assert_error(doc, "networking.outbound[1].port", "already used by outbound[0]")


def test_same_port_on_other_address_is_fine() -> None:
    doc = dataplane(
        inbound=[
            {"port": 8080, "tags": {"kuma.io/service": "a"}},
            {"port": 8080, "address": "10.0.0.2", "tags": {"kuma.io/service": "b"}},
        ]
    )
    assert len(decode(doc).spec.networking.inbound) == 2


@pytest.mark.parametrize("name", ["Web", "-web", "web-", "we b", "a" * 254])
def test_bad_resource_names(name: str) -> None:
    doc = dataplane()
    doc["name"] = name
    assert [p for p, _ in _errors(doc)] == ["name"]


def test_missing_service_tag_on_inbound() -> None:
    doc = dataplane(inbound=[{"port": 8080, "tags": {"version": "v1"}}])
    assert _errors(doc) == [("networking.inbound[0].tags", '"kuma.io/service" tag is required on every inbound')]


def test_missing_service_tag_reported_with_other_problems() -> None:
    doc = {
        "type": "ExternalService",
        "name": "es",
        "mesh": "default",
        "tags": {"kuma.io/protocol": "http"},
        "networking": {"address": "no-port"},
    }
    paths = [p for p, _ in _errors(doc)]
    assert sorted(paths) == ["networking.address", "tags"]


def test_bad_protocol_tag_names_the_tag() -> None:
    doc = dataplane(inbound=[{"port": 8080, "tags": {"kuma.io/service": "web", "kuma.io/protocol": "ftp"}}])
    _assert_error(doc, "networking.inbound[0].tags.kuma.io/protocol", "must be one of tcp, http")


def test_labels_must_be_strings() -> None:
    doc = dataplane()
    doc["labels"] = {"team": "a", "enabled": True, "n": 5}
    assert sorted(p for p, _ in _errors(doc)) == ["labels.enabled", "labels.n"]


def test_tag_values_must_be_strings() -> None:
    doc = dataplane(inbound=[{"port": 8080, "tags": {"kuma.io/service": "web", "version": 2}}])
    _assert_error(doc, "networking.inbound[0].tags.version", "must be a string, got an integer (quote it)")


def test_unknown_fields_rejected_everywhere() -> None:
    doc = dataplane(inbound=[{"port": 8080, "tags": {"kuma.io/service": "web"}, "portt": 1}])
    doc["extra"] = 1
    assert sorted(_errors(doc)) == [("extra", "unknown field"), ("networking.inbound[0].portt", "unknown field")]
    _assert_error(timeout({"idleTimeout": "1s", "idle": "1s"}), "spec.to[0].default.idle", "unknown field")
    bad = timeout({"idleTimeout": "1s"})
    bad["to"] = []
    _assert_error(bad, "to", "unknown field")


def test_mesh_must_not_be_set_on_global_types() -> None:
    _assert_error({"type": "Zone", "name": "z", "mesh": "default"}, "mesh", "must not be set")


def test_mesh_required_on_mesh_scoped_types() -> None:
    doc = dataplane()
    del doc["mesh"]
    _assert_error(doc, "mesh", "required")


def test_errors_from_several_places_are_all_reported() -> None:
    doc = timeout({"idleTimeout": "5x", "connectionTimeout": "1"})
    doc["spec"]["to"].append({"targetRef": {"kind": "Mesh", "name": "x"}, "default": {"idleTimeout": "1s"}})
    assert sorted(p for p, _ in _errors(doc)) == [
        "spec.to[0].default.connectionTimeout",
        "spec.to[0].default.idleTimeout",
        "spec.to[1].targetRef.name",
    ]


# --- targetRef rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "section", "ref", "path", "fragment"),
    [
        ("MeshTimeout", "to", {"kind": "Dataplane"}, "spec.to[0].targetRef.kind", "not allowed here"),
        ("MeshTimeout", "to", {"kind": "MeshSubset", "tags": {"a": "b"}}, "spec.to[0].targetRef.kind", "not allowed"),
        ("MeshTimeout", "from", {"kind": "MeshService", "name": "x"}, "spec.from[0].targetRef.kind", "allowed: Mesh"),
        ("MeshRetry", "to", {"kind": "Mesh", "name": "x"}, "spec.to[0].targetRef.name", "kind Mesh"),
        ("MeshRetry", "to", {"kind": "MeshService"}, "spec.to[0].targetRef.name", "must be set with kind MeshService"),
        ("MeshRetry", "to", {"kind": "MeshService", "name": "Bad/Name"}, "spec.to[0].targetRef.name", "invalid"),
        ("MeshRetry", "to", {"kind": "Mesh", "tags": {"a": "b"}}, "spec.to[0].targetRef.tags", "kind Mesh"),
        (
            "MeshTrafficPermission",
            "from",
            {"kind": "MeshSubset", "name": "x", "tags": {"a": "b"}},
            "spec.from[0].targetRef.name",
            "must not be set with kind MeshSubset",
        ),
        (
            "MeshTrafficPermission",
            "from",
            {"kind": "MeshSubset", "tags": {"a": ""}},
            "spec.from[0].targetRef.tags.a",
            "must not be empty",
        ),
        (
            "MeshCircuitBreaker",
            "to",
            {"kind": "MeshService", "name": "a", "labels": {"x": "y"}},
            "spec.to[0].targetRef.labels",
            "either labels or name",
        ),
    ],
)
def test_target_ref_rules(kind: str, section: str, ref: dict[str, Any], path: str, fragment: str) -> None:
    defaults = {
        "MeshTimeout": {"idleTimeout": "1s"},
        "MeshRetry": {"tcp": {"maxConnectAttempt": 1}},
        "MeshTrafficPermission": {"action": "Allow"},
        "MeshCircuitBreaker": {"connectionLimits": {"maxConnections": 1}},
    }
    _assert_error(policy(kind, {section: [{"targetRef": ref, "default": defaults[kind]}]}), path, fragment)


def test_top_target_ref_dataplane_with_tags_rejected() -> None:
    doc = policy(
        "MeshRetry",
        {
            "targetRef": {"kind": "Dataplane", "tags": {"app": "x"}},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": {"tcp": {"maxConnectAttempt": 1}}}],
        },
    )
    assert _errors(doc) == [("spec.targetRef.tags", "must not be set with kind Dataplane")]


def test_dataplane_section_name_only_for_inbound_policies() -> None:
    top = {"kind": "Dataplane", "labels": {"app": "x"}, "sectionName": "http"}
    outbound = policy(
        "MeshTimeout", {"targetRef": top, "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1s"}}]}
    )
    _assert_error(outbound, "spec.targetRef.sectionName", "inbound")
    inbound = policy("MeshTimeout", {"targetRef": top, "rules": [{"default": {"idleTimeout": "1s"}}]})
    assert decode(inbound).spec.target_ref.section_name == "http"


def test_gateway_listener_tags_allowed_only_where_kuma_allows_them() -> None:
    gw = {"kind": "MeshGateway", "name": "edge", "tags": {"port": "http-8080"}}
    ok = policy(
        "MeshTimeout", {"targetRef": gw, "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1s"}}]}
    )
    decode(ok)
    bad = policy(
        "MeshCircuitBreaker",
        {"targetRef": gw, "to": [{"targetRef": {"kind": "Mesh"}, "default": {"connectionLimits": {"maxRequests": 1}}}]},
    )
    _assert_error(bad, "spec.targetRef.tags", "MeshGateway")


def test_to_of_gateway_policy_only_mesh() -> None:
    doc = policy(
        "MeshTimeout",
        {
            "targetRef": {"kind": "MeshGateway", "name": "edge"},
            "to": [{"targetRef": {"kind": "MeshService", "name": "a"}, "default": {"idleTimeout": "1s"}}],
        },
    )
    _assert_error(doc, "spec.to[0].targetRef.kind", "allowed: Mesh")


def test_unknown_kind_lists_the_kinds() -> None:
    doc = timeout({"idleTimeout": "1s"})
    doc["spec"]["targetRef"] = {"kind": "Pod"}
    _assert_error(doc, "spec.targetRef.kind", "must be one of Mesh, MeshSubset")


@pytest.mark.parametrize(
    ("kind", "section"),
    [("MeshRetry", "from"), ("MeshHealthCheck", "from"), ("MeshTrafficPermission", "to"), ("MeshRetry", "rules")],
)
def test_sections_a_policy_does_not_have(kind: str, section: str) -> None:
    _assert_error(policy(kind, {section: []}), f"spec.{section}", "unknown field")


@pytest.mark.parametrize(
    ("kind", "sections"),
    [
        ("MeshTimeout", "from, to, rules"),
        ("MeshRetry", "to"),
        ("MeshTrafficPermission", "from, rules"),
        ("MeshAccessLog", "from, to, rules"),
    ],
)
def test_at_least_one_section(kind: str, sections: str) -> None:
    assert _errors(policy(kind, {"targetRef": {"kind": "Mesh"}})) == [
        ("spec", f"at least one of {sections} has to be defined")
    ]


# --- percentages, numbers ------------------------------------------------------------------------


def fault(percentage: Any) -> dict[str, Any]:
    return policy(
        "MeshFaultInjection",
        {
            "from": [
                {
                    "targetRef": {"kind": "Mesh"},
                    "default": {"http": [{"abort": {"httpStatus": 500, "percentage": percentage}}]},
                }
            ]
        },
    )


@pytest.mark.parametrize("value", [0, 50, 100, "2.5", "100", "0.001"])
def test_percentage_ok(value: Any) -> None:
    r = decode(fault(value))
    assert r.spec.from_[0].default.http[0].abort.percentage == value


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (101, "out of range 0..100"),
        ("100.5", "out of range 0..100"),
        (-1, "out of range"),
        (2.5, 'must be quoted: write "2.5"'),
        ("abc", 'invalid decimal "abc"'),
        (True, "must be an integer or a decimal"),
    ],
)
def test_percentage_rejected(value: Any, fragment: str) -> None:
    _assert_error(fault(value), "spec.from[0].default.http[0].abort.percentage", fragment)


def test_http_status_range() -> None:
    doc = fault(5)
    doc["spec"]["from"][0]["default"]["http"][0]["abort"]["httpStatus"] = 99
    _assert_error(doc, "spec.from[0].default.http[0].abort.httpStatus", "at least 100")


def test_enum_values() -> None:
    doc = policy("MeshTrafficPermission", {"from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "allow"}}]})
    assert _errors(doc) == [
        ("spec.from[0].default.action", "must be one of Allow, Deny, AllowWithShadowDeny; got 'allow'")
    ]


def test_retry_on_accepts_conditions_and_status_codes() -> None:
    def retry(on: list[str]) -> dict[str, Any]:
        return policy("MeshRetry", {"to": [{"targetRef": {"kind": "Mesh"}, "default": {"http": {"retryOn": on}}}]})

    decode(retry(["5xx", "GatewayError", "503"]))
    _assert_error(retry(["5xx", "Sometimes"]), "spec.to[0].default.http.retryOn[1]", 'unknown condition "Sometimes"')
    _assert_error(retry(["999"]), "spec.to[0].default.http.retryOn[0]", "unknown condition")


# --- mutually exclusive and dependent fields -----------------------------------------------------


def http_route(rule: dict[str, Any], **to: Any) -> dict[str, Any]:
    item = {"targetRef": {"kind": "MeshService", "name": "backend"}, "rules": [rule], **to}
    return policy("MeshHTTPRoute", {"to": [item]})


def test_filter_type_needs_its_block_and_no_other() -> None:
    doc = http_route(
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "default": {"filters": [{"type": "RequestMirror", "requestHeaderModifier": {"remove": ["x"]}}]},
        }
    )
    assert sorted(p for p, _ in _errors(doc)) == [
        "spec.to[0].rules[0].default.filters[0].requestHeaderModifier",
        "spec.to[0].rules[0].default.filters[0].requestMirror",
    ]


def test_redirect_excludes_backend_refs() -> None:
    doc = http_route(
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "default": {
                "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}],
                "backendRefs": [{"kind": "MeshService", "name": "b", "port": 80}],
            },
        }
    )
    _assert_error(doc, "spec.to[0].rules[0].default.backendRefs", "RequestRedirect")


def test_path_match_must_start_with_slash() -> None:
    doc = http_route({"matches": [{"path": {"type": "Exact", "value": "api"}}], "default": {}})
    _assert_error(doc, "spec.to[0].rules[0].matches[0].path.value", 'must start with "/"')


def test_hostnames_only_for_gateways() -> None:
    doc = http_route({"matches": [{"method": "GET"}], "default": {}}, hostnames=["a.example"])
    _assert_error(doc, "spec.to[0].hostnames", "MeshGateway")


def test_backend_ref_port_range() -> None:
    doc = http_route(
        {"matches": [{"method": "GET"}], "default": {"backendRefs": [{"kind": "MeshService", "name": "b", "port": 0}]}}
    )
    _assert_error(doc, "spec.to[0].rules[0].default.backendRefs[0].port", "out of range")


def test_access_log_backend_type_matches_block() -> None:
    doc = policy(
        "MeshAccessLog",
        {"rules": [{"default": {"backends": [{"type": "Tcp", "file": {"path": "/dev/stdout"}}]}}]},
    )
    assert sorted(p for p, _ in _errors(doc)) == [
        "spec.rules[0].default.backends[0].file",
        "spec.rules[0].default.backends[0].tcp",
    ]


def test_access_log_tcp_address_needs_port() -> None:
    doc = policy(
        "MeshAccessLog", {"rules": [{"default": {"backends": [{"type": "Tcp", "tcp": {"address": "collector"}}]}}]}
    )
    _assert_error(doc, "spec.rules[0].default.backends[0].tcp.address", "host:port")


def test_failover_zones_depend_on_type() -> None:
    doc = policy(
        "MeshLoadBalancingStrategy",
        {
            "to": [
                {
                    "targetRef": {"kind": "Mesh"},
                    "default": {
                        "localityAwareness": {
                            "crossZone": {
                                "failover": [{"to": {"type": "Only"}}, {"to": {"type": "Any", "zones": ["a"]}}]
                            }
                        }
                    },
                }
            ]
        },
    )
    base = "spec.to[0].default.localityAwareness.crossZone.failover"
    assert sorted(p for p, _ in _errors(doc)) == [f"{base}[0].to.zones", f"{base}[1].to.zones"]


def test_load_balancer_block_must_match_type() -> None:
    doc = policy(
        "MeshLoadBalancingStrategy",
        {"to": [{"targetRef": {"kind": "Mesh"}, "default": {"loadBalancer": {"type": "RoundRobin", "ringHash": {}}}}]},
    )
    _assert_error(doc, "spec.to[0].default.loadBalancer.ringHash", "must not be set with type RoundRobin")


def test_rate_limit_interval_minimum() -> None:
    doc = policy(
        "MeshRateLimit",
        {"rules": [{"default": {"local": {"http": {"requestRate": {"num": 1, "interval": "10ms"}}}}}]},
    )
    _assert_error(doc, "spec.rules[0].default.local.http.requestRate.interval", "at least 50ms")


def test_external_service_tls_client_cert_needs_key() -> None:
    doc: dict[str, Any] = {
        "type": "ExternalService",
        "name": "es",
        "mesh": "default",
        "tags": {"kuma.io/service": "es"},
        "networking": {"address": "example.com:443", "tls": {"enabled": True, "clientCert": {"secret": "c"}}},
    }
    _assert_error(doc, "networking.tls.clientKey", "together")
    doc["networking"]["tls"] = {"caCert": {"secret": "a", "inline": "YQ=="}}
    _assert_error(doc, "networking.tls.caCert", "exactly one of")


def test_external_service_address_port_range() -> None:
    doc = {
        "type": "ExternalService",
        "name": "es",
        "mesh": "default",
        "tags": {"kuma.io/service": "es"},
        "networking": {"address": "example.com:99999"},
    }
    _assert_error(doc, "networking.address", "out of range")


def test_zone_ingress_advertised_address_and_port_together() -> None:
    doc = {"type": "ZoneIngress", "name": "zi", "networking": {"address": "10.0.0.1", "advertisedAddress": "1.2.3.4"}}
    _assert_error(doc, "networking.advertisedPort", "together")


def test_zone_ingress_and_egress_default_ports_not_written_back() -> None:
    zi = decode({"type": "ZoneIngress", "name": "zi", "networking": {"address": "10.0.0.1"}})
    assert zi.spec.networking.port == 10001
    assert "port" not in zi.spec_dict()["networking"]
    ze = decode({"type": "ZoneEgress", "name": "ze", "networking": {"address": "10.0.0.1"}})
    assert ze.spec.networking.port == 10002


def test_virtual_outbound_rules() -> None:
    doc = {
        "type": "VirtualOutbound",
        "name": "vo",
        "mesh": "default",
        "selectors": [{"match": {"kuma.io/service": "*"}}],
        "conf": {
            "host": "{{.svc}}.{{.nope}}.mesh",
            "port": "99999",
            "parameters": [{"name": "svc", "tagKey": "kuma.io/service"}],
        },
    }
    assert sorted(_errors(doc)) == [
        ("conf.host", 'template refers to ".nope", which is not a parameter'),
        ("conf.port", "port 99999 out of range 1..65535"),
    ]
    empty = copy.deepcopy(doc)
    empty["selectors"] = []
    _assert_error(empty, "selectors", "at least one")


def test_secret_data_must_be_base64() -> None:
    _assert_error({"type": "Secret", "name": "s", "mesh": "default", "data": "not base64!"}, "data", "base64")
    s = decode({"type": "Secret", "name": "s", "mesh": "default", "data": "dGVzdAo="})
    assert s.spec.value == b"test\n"


def test_mesh_enabled_backend_must_exist() -> None:
    doc = {
        "type": "Mesh",
        "name": "m",
        "mtls": {"enabledBackend": "ca-2", "backends": [{"name": "ca-1", "type": "builtin"}]},
    }
    assert _errors(doc) == [("mtls.enabledBackend", '"ca-2" is not one of the backends')]


def test_mesh_builtin_ca_conf_is_typed() -> None:
    doc = {
        "type": "Mesh",
        "name": "m",
        "mtls": {"backends": [{"name": "ca-1", "type": "builtin", "conf": {"caCert": {"RSAbits": 1024}}}]},
    }
    assert _errors(doc) == [("mtls.backends[0].conf.caCert.RSAbits", "must be at least 2048, got 1024")]


def test_mesh_logging_and_tracing_conf_typed_by_backend_type() -> None:
    doc = {
        "type": "Mesh",
        "name": "m",
        "logging": {"backends": [{"name": "l", "type": "tcp", "conf": {"address": "nohost"}}]},
        "tracing": {"backends": [{"name": "t", "type": "datadog", "conf": {"address": "1.2.3.4"}}]},
    }
    assert sorted(p for p, _ in _errors(doc)) == [
        "logging.backends[0].conf.address",
        "tracing.backends[0].conf.port",
    ]


def test_mesh_provided_ca_is_unsupported_for_now() -> None:
    doc = {"type": "Mesh", "name": "m", "mtls": {"backends": [{"name": "ca", "type": "provided", "conf": {}}]}}
    _assert_error(doc, "mtls.backends[0].type", 'unsupported type "provided"')


def test_unsupported_type() -> None:
    _assert_error({"type": "MeshGateway", "name": "g", "mesh": "default"}, "type", 'unsupported type "MeshGateway"')


def test_rate_limit_needs_one_field_of_a_limit_as_kuma() -> None:
    """A limit may set only ``onRateLimit`` or ``disabled`` (policies merge); an empty one is refused."""

    def doc(local: dict[str, Any]) -> dict[str, Any]:
        return policy("MeshRateLimit", {"from": [{"targetRef": {"kind": "Mesh"}, "default": {"local": local}}]})

    decode(doc({"http": {"onRateLimit": {"status": 503}}, "tcp": {"disabled": True}}))  # valid
    _assert_error(doc({"http": {}}), "spec.from[0].default.local.http", "disabled, requestRate, onRateLimit")
    _assert_error(doc({"tcp": {}}), "spec.from[0].default.local.tcp", "disabled, connectionRate")
    _assert_error(doc({}), "spec.from[0].default.local", "http, tcp")


def test_fault_injection_percentages_and_status_in_range() -> None:
    def doc(fault: dict[str, Any]) -> dict[str, Any]:
        return policy("MeshFaultInjection", {"from": [{"targetRef": {"kind": "Mesh"}, "default": {"http": [fault]}}]})

    base = "spec.from[0].default.http[0]"
    decode(doc({"abort": {"httpStatus": 503, "percentage": "2.5"}, "delay": {"value": "1s", "percentage": 0}}))
    _assert_error(doc({"abort": {"httpStatus": 503, "percentage": 101}}), f"{base}.abort.percentage", "")
    _assert_error(doc({"delay": {"value": "1s", "percentage": "-1"}}), f"{base}.delay.percentage", "")
    _assert_error(doc({"abort": {"httpStatus": 99, "percentage": 1}}), f"{base}.abort.httpStatus", "")
    _assert_error(
        doc({"responseBandwidth": {"limit": "10 MB", "percentage": 1}}), f"{base}.responseBandwidth.limit", ""
    )


RATE = {"local": {"http": {"requestRate": {"num": 1, "interval": "1s"}}}}
FAULT = {"http": [{"abort": {"httpStatus": 503, "percentage": 100}}]}


@pytest.mark.parametrize(("kind", "default"), [("MeshRateLimit", RATE), ("MeshFaultInjection", FAULT)])
def test_inbound_kinds_refuse_to_unless_the_top_is_a_gateway(kind: str, default: dict[str, Any]) -> None:
    """As in Kuma, ``to[]`` of these two kinds configures builtin gateways only: on any other top
    it is refused (it would be stored and never enforced on a sidecar)."""
    to = [{"targetRef": {"kind": "Mesh"}, "default": default}]
    _assert_error(
        policy(kind, {"targetRef": {"kind": "Mesh"}, "to": to}), "spec.to", "unless targetRef is a MeshGateway"
    )
    _assert_error(policy(kind, {"to": to}), "spec.to", "use rules[] or from[]")
    to_service = [{"targetRef": {"kind": "MeshService", "name": "backend"}, "default": default}]
    _assert_error(policy(kind, {"targetRef": {"kind": "MeshService", "name": "b"}, "to": to_service}), "spec.to", "")
    decode(policy(kind, {"targetRef": {"kind": "MeshGateway", "name": "gw"}, "to": to}))  # the gateway form


def test_rate_limit_refuses_a_mesh_http_route_target() -> None:
    """Kuma applies MeshRateLimit on a MeshHTTPRoute to gateway routes only; Atoll has no gateways."""
    doc = policy("MeshRateLimit", {"targetRef": {"kind": "MeshHTTPRoute", "name": "r"}, "rules": [{"default": RATE}]})
    _assert_error(doc, "spec.targetRef.kind", "kind MeshHTTPRoute is not allowed here")


def test_rate_limit_rules_have_no_matches() -> None:
    """MeshRateLimit ``rules[]`` apply to every caller: a SPIFFE ``matches`` is refused, not ignored."""
    rule = {"matches": [{"spiffeID": {"type": "Exact", "value": "spiffe://default/web"}}], "default": RATE}
    _assert_error(policy("MeshRateLimit", {"rules": [rule]}), "spec.rules[0].matches", "")
