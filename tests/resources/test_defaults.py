"""``initial_policies``: Kuma's default MeshTimeout/MeshRetry/MeshCircuitBreaker for a new mesh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from atoll.resources import decode, encode
from atoll.resources.defaults import initial_policies

CORPUS = Path(__file__).resolve().parents[2].parent / "shared/compat/kuma-docs"


def mesh(name: str = "default", **spec: Any) -> Any:
    return decode({"type": "Mesh", "name": name, **spec})


def test_three_policies_named_after_the_mesh() -> None:
    got = initial_policies(mesh("prod"))
    assert [(r.type, r.name, r.mesh) for r in got] == [
        ("MeshTimeout", "mesh-timeout-all-prod", "prod"),
        ("MeshRetry", "mesh-retry-all-prod", "prod"),
        ("MeshCircuitBreaker", "mesh-circuit-breaker-all-prod", "prod"),
    ]


@pytest.mark.parametrize(("file", "index"), [("110-meshtimeout.yaml", 0), ("113-meshretry.yaml", 1)])
def test_content_matches_kuma_docs(file: str, index: int) -> None:
    path = CORPUS / file
    if not path.exists():  # pragma: no cover
        pytest.skip(reason=f"the compatibility corpus is not at {CORPUS} (the repo sits beside shared/)")
    expected = yaml.safe_load(path.read_text())
    got = encode(initial_policies(mesh())[index], with_times=False)
    assert got == expected


def test_circuit_breaker_defaults() -> None:
    cb = initial_policies(mesh())[2]
    to = cb.spec.to[0].default
    assert cb.spec.target_ref.kind == "Mesh"
    assert to.connection_limits.max_connections == 1024
    assert to.outlier_detection.detectors.total_failures.consecutive == 5
    assert to.outlier_detection.detectors.success_rate.standard_deviation_factor == "1.9"
    assert cb.spec.from_[0].default == to


def test_skip_all() -> None:
    assert initial_policies(mesh(skipCreatingInitialPolicies=["*"])) == []


def test_skip_some_kinds() -> None:
    got = initial_policies(mesh(skipCreatingInitialPolicies=["MeshRetry", "MeshCircuitBreaker"]))
    assert [r.type for r in got] == ["MeshTimeout"]


def test_skip_by_policy_name() -> None:
    got = initial_policies(mesh("m", skipCreatingInitialPolicies=["mesh-timeout-all-m"]))
    assert [r.type for r in got] == ["MeshRetry", "MeshCircuitBreaker"]


def test_empty_skip_list_creates_all() -> None:
    assert len(initial_policies(mesh(skipCreatingInitialPolicies=[]))) == 3


def test_policies_round_trip() -> None:
    for r in initial_policies(mesh()):
        assert decode(encode(r)) == r


def test_needs_a_mesh() -> None:
    zone = decode({"type": "Zone", "name": "z"})
    with pytest.raises(ValueError, match="needs a Mesh"):
        initial_policies(zone)
