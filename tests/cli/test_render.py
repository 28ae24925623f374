"""Type lookup and the rows of `atoll get` tables (pure: no server, fixed clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click
import pytest

from atoll.cli.render import age, lookup_type, table
from atoll.resources import find_type

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).isoformat()


@pytest.mark.parametrize("word", ["dataplanes", "dataplane", "Dataplane", "DATAPLANES"])
def test_lookup_any_spelling(word: str) -> None:
    assert lookup_type(word).name == "Dataplane"


def test_lookup_meshes_and_policies() -> None:
    assert lookup_type("meshes").name == "Mesh"
    assert lookup_type("mesh").name == "Mesh"
    if find_type("MeshTrafficPermission") is not None:
        assert lookup_type("meshtrafficpermissions").name == "MeshTrafficPermission"
        assert lookup_type("MeshTrafficPermission").name == "MeshTrafficPermission"


def test_unknown_type_lists_known_ones() -> None:
    with pytest.raises(click.UsageError) as e:
        lookup_type("gizmos")
    assert 'unknown resource type "gizmos"' in e.value.message
    assert "dataplanes" in e.value.message and "meshes" in e.value.message


def test_age() -> None:
    assert age(ago(seconds=5), NOW) == "5s"
    assert age(ago(minutes=5), NOW) == "5m"
    assert age(ago(hours=5), NOW) == "5h"
    assert age(ago(days=3), NOW) == "3d"
    assert age("2026-01-02T03:04:00Z", NOW) == "5s"
    assert age(None, NOW) == ""
    assert age("yesterday", NOW) == ""


def test_mesh_table() -> None:
    docs: list[dict[str, Any]] = [
        {
            "type": "Mesh",
            "name": "secure",
            "creationTime": ago(minutes=3),
            "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]},
        },
        {"type": "Mesh", "name": "default", "creationTime": ago(seconds=30)},
    ]
    header, rows = table(lookup_type("meshes"), docs, NOW)
    assert header == ["NAME", "MTLS", "AGE"]
    assert rows == [["default", "off", "30s"], ["secure", "builtin/ca-1 (STRICT)", "3m"]]


def test_dataplane_table_shows_address_and_inbound_services() -> None:
    doc = {
        "type": "Dataplane",
        "name": "web-1",
        "mesh": "default",
        "creationTime": ago(hours=2),
        "networking": {
            "address": "10.0.0.1",
            "inbound": [
                {"port": 8080, "tags": {"kuma.io/service": "web"}},
                {"port": 8081, "tags": {"kuma.io/service": "web-admin"}},
            ],
            "outbound": [{"port": 10001, "tags": {"kuma.io/service": "backend"}}],
        },
    }
    header, rows = table(lookup_type("dataplane"), [doc], NOW)
    assert header == ["NAME", "MESH", "ADDRESS", "SERVICES", "AGE"]
    assert rows == [["web-1", "default", "10.0.0.1", "web,web-admin", "2h"]]


def test_policy_table_shows_target_ref() -> None:
    rt = find_type("MeshTrafficPermission")
    assert rt is not None
    docs = [
        {"type": rt.name, "name": "a", "mesh": "default", "spec": {"targetRef": {"kind": "Mesh"}}},
        {
            "type": rt.name,
            "name": "b",
            "mesh": "default",
            "spec": {"targetRef": {"kind": "MeshService", "name": "web"}},
        },
        {
            "type": rt.name,
            "name": "c",
            "mesh": "default",
            "spec": {"targetRef": {"kind": "MeshSubset", "tags": {"version": "v1", "app": "x"}}},
        },
    ]
    docs.append(
        {
            "type": rt.name,
            "name": "d",
            "mesh": "default",
            "spec": {"targetRef": {"kind": "Dataplane", "labels": {"a": "b"}}},
        }
    )
    header, rows = table(rt, docs, NOW)
    assert header == ["NAME", "MESH", "TARGETREF", "AGE"]
    assert [r[2] for r in rows] == ["Mesh", "MeshService/web", "MeshSubset app=x,version=v1", "Dataplane a=b"]
