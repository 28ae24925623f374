"""``atoll.topology.enforcement``: the one table of what is stored and not enforced, and its warnings."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from atoll.resources import decode
from atoll.resources.types import all_types, find_type, get_type
from atoll.topology.enforcement import NOT_ENFORCED, not_enforced_kinds, unenforced, warning_text
from atoll.topology.settings import NO_SETTINGS, fold_settings
from atoll.topology.settings.traffic_permission import TRAFFIC_PERMISSION

README = Path(__file__).resolve().parents[2] / "README.md"


def _folded(kind: str) -> bool:
    """Whether ``fold_settings`` reads ``kind`` into some ``PolicySettings`` field (what the
    generators then read)."""
    probes: list[dict[str, Any]] = [
        {},
        {"rules": [{"default": {"backendRefs": [{"kind": "MeshService", "name": "x"}]}}]},
    ]
    return any(fold_settings({kind: [probe]}) != NO_SETTINGS for probe in probes)


def test_every_policy_kind_is_enforced_or_listed() -> None:
    listed = not_enforced_kinds()
    for rt in all_types():
        if not rt.policy:
            continue
        enforced = rt.name == TRAFFIC_PERMISSION or _folded(rt.name)
        assert enforced or rt.name in listed, f"{rt.name} is accepted, enforced by no generator, and not listed"
        assert not (enforced and rt.name in listed), f"{rt.name} is enforced now: delete its row in enforcement"


def _unwrap(annotation: Any) -> list[Any]:
    """The classes an annotation may hold (through ``X | None``, ``list[X]``, ``Literal``...)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple):
        return [c for arg in typing.get_args(annotation) for c in _unwrap(arg)]
    return [annotation]


def _field_exists(model: type[BaseModel], parts: list[str]) -> bool:
    if not parts:
        return True
    key = parts[0].removesuffix("[]")
    for name, info in model.model_fields.items():
        aliases = {info.alias, name, info.serialization_alias}
        choices = getattr(info.validation_alias, "choices", None)
        aliases.update(choices or ())
        if key in aliases:
            subs = [c for c in _unwrap(info.annotation) if isinstance(c, type) and issubclass(c, BaseModel)]
            return not parts[1:] or any(_field_exists(sub, parts[1:]) for sub in subs)
    return False


@pytest.mark.parametrize("row", NOT_ENFORCED, ids=lambda r: f"{r.kind}:{r.path or '*'}")
def test_rows_name_registered_kinds_and_real_fields(row: Any) -> None:
    rt = get_type(row.kind)
    assert not row.path or _field_exists(rt.spec_model, row.path.split(".")), row.path
    assert row.reason


def _doc(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "mesh": "default", "name": "p", "spec": spec}


def test_fields_not_read_are_warned_with_their_path() -> None:
    lb = decode(
        _doc(
            "MeshLoadBalancingStrategy",
            {
                "targetRef": {"kind": "Mesh"},
                "to": [
                    {"targetRef": {"kind": "Mesh"}, "default": {"loadBalancer": {"type": "Random"}}},
                    {
                        "targetRef": {"kind": "MeshService", "name": "backend"},
                        "default": {
                            "localityAwareness": {"localZone": {"affinityTags": [{"key": "k8s.io/node"}]}},
                            "hashPolicies": [{"type": "SourceIP"}, {"type": "Header", "header": {"name": "x"}}],
                        },
                    },
                ],
            },
        )
    )
    assert unenforced(lb) == [
        "spec.to[1].default.localityAwareness.localZone: affinity tags within the local zone are not translated",
        "spec.to[1].default.hashPolicies[0].type: SourceIP: Envoy routes cannot hash on SourceIP; "
        "use type Connection with connection.sourceIP",
    ]


def test_enforced_policy_has_no_warning() -> None:
    timeout = decode(
        _doc(
            "MeshTimeout",
            {"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "5s"}}]},
        )
    )
    assert unenforced(timeout) == []


def test_gateway_and_unsupported_destinations_are_warned() -> None:
    retry = decode(
        _doc(
            "MeshRetry",
            {
                "targetRef": {"kind": "MeshGateway", "name": "edge"},
                "to": [{"targetRef": {"kind": "Mesh"}, "default": {"tcp": {"maxConnectAttempt": 2}}}],
            },
        )
    )
    (warning,) = unenforced(retry)
    assert warning.startswith("spec.targetRef.kind: MeshGateway: gateways")
    mes = decode(
        _doc(
            "MeshTimeout",
            {
                "targetRef": {"kind": "Mesh", "proxyTypes": ["Sidecar", "Gateway"]},
                "to": [{"targetRef": {"kind": "MeshExternalService", "name": "x"}, "default": {"idleTimeout": "5s"}}],
            },
        )
    )
    assert [w.split(": ")[0] for w in unenforced(mes)] == ["spec.targetRef.proxyTypes", "spec.to[0].targetRef.kind"]


def test_a_kind_not_enforced_gets_one_warning_for_the_whole_kind() -> None:
    route = decode(
        _doc(
            "MeshHTTPRoute",
            {
                "targetRef": {"kind": "Mesh"},
                "to": [
                    {
                        "targetRef": {"kind": "MeshService", "name": "backend"},
                        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "default": {}}],
                    }
                ],
            },
        )
    )
    if "MeshHTTPRoute" in not_enforced_kinds():
        assert unenforced(route) == ["MeshHTTPRoute: HTTP routes are not generated yet"]
    else:  # once routes are generated
        assert unenforced(route) == []
    assert warning_text("x: y") == "stored, not enforced: x: y"


def test_flattened_types_have_top_level_paths() -> None:
    mesh = decode(
        {
            "type": "Mesh",
            "name": "m",
            "metrics": {"enabledBackend": "p", "backends": [{"name": "p", "type": "prometheus"}]},
        }
    )
    assert [w.split(": ")[0] for w in unenforced(mesh)] == ["metrics"]


def test_readme_lists_the_kinds_not_enforced() -> None:
    """The README's line of stored-but-not-enforced kinds names exactly the table's whole kinds."""
    text = README.read_text()
    match = re.search(r"Stored but not enforced yet[^:]*:([^\n]*(?:\n  [^\n]*)*)", text)
    assert match, "README.md has no 'Stored but not enforced yet' line"
    named = {w for w in re.findall(r"\b[A-Z][A-Za-z]+\b", match.group(1)) if find_type(w) is not None}
    assert named == set(not_enforced_kinds())
