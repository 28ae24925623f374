"""The codec: envelope handling, multi-document input, error paths, stable round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from atoll.errors import InvalidInput
from atoll.resources import decode, decode_all, dump_json, dump_yaml, encode, find_type, get_type
from atoll.resources.models.dataplane import DataplaneSpec, Inbound, Networking

DP = """
type: Dataplane
mesh: default
name: web-1
labels:
  team: a
networking:
  address: 10.0.0.1
  inbound:
  - port: 8080
    tags:
      kuma.io/service: web
"""

POLICY = """
type: MeshTimeout
mesh: default
name: t
spec:
  to:
  - targetRef:
      kind: Mesh
    default:
      idleTimeout: 1m30s
"""


def test_decode_envelope_and_spec() -> None:
    (r,) = decode_all(DP)
    assert (r.type, r.mesh, r.name, dict(r.meta.labels)) == ("Dataplane", "default", "web-1", {"team": "a"})
    assert r.spec.networking.inbound[0].service == "web"
    assert r.spec.networking.inbound[0].protocol == "tcp"


def test_flattened_and_nested_shapes_are_written_back() -> None:
    dp, pol = decode_all(DP + "---" + POLICY)
    assert "networking" in encode(dp) and "spec" not in encode(dp)
    assert encode(pol)["spec"]["to"][0]["default"] == {"idleTimeout": "1m30s"}


def test_encode_fills_in_no_defaults() -> None:
    (r,) = decode_all(DP)
    assert encode(r)["networking"] == {
        "address": "10.0.0.1",
        "inbound": [{"port": 8080, "tags": {"kuma.io/service": "web"}}],
    }


def test_times_are_read_and_written() -> None:
    doc = {"type": "Zone", "name": "z", "creationTime": "2026-01-02T03:04:05+00:00", "enabled": False}
    r = decode(doc)
    assert r.meta.creation_time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert encode(r)["creationTime"] == "2026-01-02T03:04:05+00:00"
    assert "creationTime" not in encode(r, with_times=False)


def test_round_trip_of_programmatic_resources() -> None:
    spec = DataplaneSpec(
        networking=Networking(address="10.0.0.1", inbound=[Inbound(port=80, tags={"kuma.io/service": "a"})])
    )
    r = decode({"type": "Dataplane", "name": "a", "mesh": "m", **spec.model_dump(by_alias=True, exclude_none=True)})
    assert r.spec == spec
    assert decode(encode(r)) == r


def test_yaml_and_json_dumps_decode_back() -> None:
    rs = decode_all(DP + "---" + POLICY)
    assert decode_all(dump_yaml(rs)) == rs
    assert decode_all(dump_json(rs)) == rs


def test_multi_document_errors_are_prefixed_with_the_document_index() -> None:
    bad = POLICY.replace("1m30s", "5x")
    with pytest.raises(InvalidInput) as info:
        decode_all(DP + "---" + bad)
    assert [(e.path, e.message) for e in info.value.errors] == [
        ("[1].spec.to[0].default.idleTimeout", 'invalid duration "5x"')
    ]


def test_single_document_errors_have_no_index() -> None:
    with pytest.raises(InvalidInput) as info:
        decode_all(POLICY.replace("1m30s", "5x"))
    assert str(info.value.errors[0]) == 'spec.to[0].default.idleTimeout: invalid duration "5x"'


def test_duplicates_in_one_input() -> None:
    with pytest.raises(InvalidInput, match="appears twice"):
        decode_all(DP + "---" + DP)


def test_empty_and_broken_input() -> None:
    with pytest.raises(InvalidInput, match="no resources"):
        decode_all("")
    with pytest.raises(InvalidInput, match="line 2"):
        decode_all("type: Mesh\n  name: : x")
    with pytest.raises(InvalidInput, match="must be a mapping"):
        decode(["type", "Mesh"])


def test_missing_type() -> None:
    with pytest.raises(InvalidInput) as info:
        decode({"name": "x"})
    assert info.value.errors[0].path == "type"


def test_policy_fields_outside_spec_are_named() -> None:
    with pytest.raises(InvalidInput) as info:
        decode({"type": "MeshRetry", "name": "r", "mesh": "m", "to": []})
    assert [e.path for e in info.value.errors] == ["to", "spec"]


def test_spec_must_be_a_mapping() -> None:
    with pytest.raises(InvalidInput) as info:
        decode({"type": "MeshRetry", "name": "r", "mesh": "m", "spec": [1]})
    assert info.value.errors[0].path == "spec"


def test_types_registry() -> None:
    for name, plural, scope, flattened, policy, owner in [
        ("Mesh", "meshes", "global", True, False, "global"),
        ("Dataplane", "dataplanes", "mesh", True, False, "zone"),
        ("ZoneIngress", "zoneingresses", "global", True, False, "zone"),
        ("ZoneEgress", "zoneegresses", "global", True, False, "zone"),
        ("Zone", "zones", "global", True, False, "global"),
        ("ExternalService", "external-services", "mesh", True, False, "global"),
        ("VirtualOutbound", "virtual-outbounds", "mesh", True, False, "global"),
        ("Secret", "secrets", "mesh", True, False, "global"),
        ("MeshRetry", "meshretries", "mesh", False, True, "global"),
        ("MeshLoadBalancingStrategy", "meshloadbalancingstrategies", "mesh", False, True, "global"),
    ]:
        rt = get_type(name)
        assert (rt.plural, rt.scope.value, rt.flattened, rt.policy, rt.owner) == (
            plural,
            scope,
            flattened,
            policy,
            owner,
        ), name
        assert find_type(plural) is rt and find_type(name.lower()) is rt
    assert get_type("Secret").secret
    # Kuma's plurals are canonical; Atoll's older spellings still find the type.
    for old, name in (("externalservices", "ExternalService"), ("virtualoutbounds", "VirtualOutbound")):
        assert old in get_type(name).plural_aliases and find_type(old) is get_type(name)


def test_rest_list_shape_is_read_as_its_items() -> None:
    rs = decode_all(DP + "---" + POLICY)
    listing = {"total": 2, "items": [encode(r) for r in rs], "next": None}
    assert decode_all(json.dumps(listing)) == rs
