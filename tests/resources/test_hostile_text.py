"""Text no resource may hold, and texts no parser may be fed, refused where every entry decodes:
the codec (REST bodies, the CLI's files, node metadata) and the KDS wire format."""

from __future__ import annotations

import json
import time

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from atoll.errors import InvalidInput
from atoll.kds import kds_pb2
from atoll.kds.wire import WireError, from_wire, to_wire
from atoll.resources import decode_all, load_documents
from atoll.resources.parsing import MAX_DEPTH, TextLimit, load_json, load_yaml_documents
from tests.kds.data import dataplane


def _kds_item(spec: bytes, labels: dict[str, str] | None = None) -> discovery_pb2.Resource:
    item = to_wire(dataplane("web-1", port=8080))
    payload = kds_pb2.KdsResource()
    item.resource.Unpack(payload)
    payload.spec = spec
    if labels:
        payload.meta.labels.update(labels)
    packed = any_pb2.Any()
    packed.Pack(payload)
    item.resource.CopyFrom(packed)
    return item


def test_kds_refuses_a_lone_surrogate_naming_the_field() -> None:
    payload = kds_pb2.KdsResource()
    to_wire(dataplane("web-1", port=8080)).resource.Unpack(payload)
    spec = json.loads(payload.spec)
    spec["networking"]["inbound"][0]["tags"]["version"] = "\ud800"
    bad = _kds_item(json.dumps(spec).encode())
    with pytest.raises(WireError, match=r"networking\.inbound\[0\]\.tags\.version: must be valid Unicode"):
        from_wire("Dataplane", bad)


def test_kds_refuses_deeply_nested_spec() -> None:
    bad = _kds_item(b'{"networking":' + b"[" * 1000 + b"]" * 1000 + b"}")
    with pytest.raises(WireError, match="nested deeper than 64 levels"):
        from_wire("Dataplane", bad)


def test_cli_yaml_refuses_an_alias_bomb_at_once() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = "\n".join([*lines, "type: *a8", "name: *a8"]) + "\n"
    t0 = time.monotonic()
    with pytest.raises(InvalidInput) as caught:
        decode_all(text)
    assert time.monotonic() - t0 < 2.0
    assert "aliases expand to more than 10000 nodes" in str(caught.value)
    assert len(str(caught.value)) < 300


def test_yaml_aliases_within_the_bound_still_work() -> None:
    docs = load_documents("base: &b {kuma.io/service: web}\nx: *b\ny: *b\n")
    assert docs == [
        {"base": {"kuma.io/service": "web"}, "x": {"kuma.io/service": "web"}, "y": {"kuma.io/service": "web"}}
    ]


def test_a_recursive_yaml_alias_is_refused() -> None:
    with pytest.raises(TextLimit, match=r"recursive alias \(\*a\)"):
        load_yaml_documents("a: &a [1, *a]\n")


def test_nesting_up_to_the_bound_is_read_and_past_it_refused() -> None:
    assert load_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    assert load_yaml_documents("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert load_json('["' + "[" * 500 + '"]') == ["[" * 500]  # brackets inside strings do not count
    with pytest.raises(TextLimit):
        load_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(TextLimit):
        load_yaml_documents("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


def test_cli_yaml_refuses_a_lone_surrogate_in_a_label() -> None:
    text = 'type: Mesh\nname: m\nlabels:\n  team: "\\ud800"\n'
    with pytest.raises(InvalidInput) as caught:
        decode_all(text)
    assert [e.path for e in caught.value.errors] == ["labels.team"]
