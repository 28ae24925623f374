"""MeshLoadBalancingStrategy's Connection hash policy: Kuma's ``connection.sourceIP`` reaches Envoy.

The field was once accepted only as ``sourceIp`` while the settings read ``sourceIP``, so it was
stored and ignored (Envoy always hashed on the source IP). Both spellings are read now, and the
route's hash policy says what the policy says.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atoll.resources import decode
from atoll.topology import proxy_view
from atoll.topology.settings.load_balancing import LoadBalancingSettings
from atoll.xds.generate import sidecar_resources
from tests.generate.certs import fixed_identity
from tests.generate.envoy_validate import assert_valid, static_bootstrap
from tests.generate.golden import assert_golden, load_mesh_view

HASHES = """---
type: MeshLoadBalancingStrategy
mesh: default
name: lb-hash
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      default:
        loadBalancer: {type: Maglev}
        hashPolicies:
          - {type: Connection, connection: {sourceIP: false}}
          - {type: Header, header: {name: x-user}, terminal: true}
"""


def _policy(spelling: str, value: bool) -> dict[str, object]:
    hashing = {"type": "Connection", "connection": {spelling: value}}
    return {
        "type": "MeshLoadBalancingStrategy",
        "mesh": "default",
        "name": "lb",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": {"hashPolicies": [hashing]}}],
        },
    }


@pytest.mark.parametrize("spelling", ["sourceIP", "sourceIp"])
@pytest.mark.parametrize("value", [False, True])
def test_connection_source_ip_is_read(spelling: str, value: bool) -> None:
    resource = decode(_policy(spelling, value))
    default = resource.spec_dict()["to"][0]["default"]
    assert default["hashPolicies"][0]["connection"] == {"sourceIP": value}  # stored in Kuma's spelling
    settings = LoadBalancingSettings.from_conf(default)
    assert [(h.type, h.source_ip) for h in settings.hash_policies] == [("Connection", value)]


def _resources() -> object:
    return sidecar_resources(proxy_view(load_mesh_view("mesh-mtls.yaml", extra=HASHES), "web-1"), fixed_identity())


def test_connection_hash_golden() -> None:
    resources = _resources()
    rendered = resources.to_dict()  # type: ignore[attr-defined]
    del rendered["secrets"]
    assert_golden("policies/load-balancing-hash-web-1.yaml", rendered)
    backend = list(_route_actions(rendered, "backend"))
    assert backend, "web-1 has a route to backend"
    for action in backend:
        assert action["hash_policy"][0] == {"connection_properties": {}}  # source_ip false: not set in Envoy


def _route_actions(value: Any, cluster: str) -> Iterator[dict[str, Any]]:
    """Every route action (a mapping with ``cluster`` and ``hash_policy``) naming ``cluster``."""
    if isinstance(value, dict):
        if value.get("cluster") == cluster and "hash_policy" in value:
            yield value
        for v in value.values():
            yield from _route_actions(v, cluster)
    elif isinstance(value, list):
        for v in value:
            yield from _route_actions(v, cluster)


@pytest.mark.envoy
def test_connection_hash_passes_envoy_validate(tmp_path: Path) -> None:
    assert_valid(static_bootstrap(_resources()), tmp_path)  # type: ignore[arg-type]
