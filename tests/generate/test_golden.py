"""Golden tests: testdata/mesh.yaml -> the Envoy resources of every proxy, compared exactly with
testdata/sidecar/<name>.yaml (and proxyless/, bootstrap/). Regenerate with UPDATE_GOLDEN=1."""

from __future__ import annotations

import pytest

from atoll.topology import proxy_view
from atoll.xds.generate import envoy_bootstrap, grpc_proxyless_resources, grpc_xds_bootstrap, sidecar_resources
from tests.generate.golden import assert_golden, load_mesh_view

PROXIES = ["web-1", "backend-1", "backend-2", "backend-3", "db-1", "echo-1", "grpc-client"]


def test_every_dataplane_has_a_golden_file() -> None:
    assert sorted(PROXIES) == sorted(dp.name for dp in load_mesh_view().dataplanes)


@pytest.mark.parametrize("name", PROXIES)
def test_sidecar_golden(name: str) -> None:
    resources = sidecar_resources(proxy_view(load_mesh_view(), name))
    assert resources.check_consistent() == []
    assert_golden(f"sidecar/{name}.yaml", resources.to_dict())


def test_sidecar_generation_is_deterministic() -> None:
    a = sidecar_resources(proxy_view(load_mesh_view(), "web-1"))
    b = sidecar_resources(proxy_view(load_mesh_view(), "web-1"))
    assert a == b
    assert [m.SerializeToString(deterministic=True) for m in a.listeners] == [
        m.SerializeToString(deterministic=True) for m in b.listeners
    ]


def test_proxyless_golden() -> None:
    resources = grpc_proxyless_resources(proxy_view(load_mesh_view(), "grpc-client"))
    assert resources.check_consistent() == []
    assert_golden("proxyless/grpc-client.yaml", resources.to_dict())


def test_bootstrap_golden_sotw() -> None:
    boot = envoy_bootstrap(
        node_id="default.web-1",
        node_cluster="web",
        xds_host="127.0.0.1",
        xds_port=5678,
        ads="sotw",
        admin_port=9901,
        metadata={"mesh": "default", "dataplane": "web-1"},
        token="tok.en",
    )
    assert_golden("bootstrap/sotw.yaml", boot)


def test_bootstrap_golden_delta_tls_dns() -> None:
    boot = envoy_bootstrap(
        node_id="default.web-1",
        node_cluster="web",
        xds_host="cp.example.internal",
        xds_port=5678,
        ads="delta",
        admin_port=9901,
        xds_tls_ca_pem="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    assert_golden("bootstrap/delta-tls.yaml", boot)


def test_bootstrap_golden_admin_on_a_unix_socket() -> None:
    """What kuma-dp gets: Envoy's admin on the socket kuma-dp reads from the bootstrap."""
    boot = envoy_bootstrap(
        node_id="default.web-1",
        node_cluster="web",
        xds_host="127.0.0.1",
        xds_port=5678,
        ads="delta",
        admin_port=9901,
        admin_pipe="/tmp/kuma-dp-web-1/kuma-envoy-admin.sock",
        token="tok.en",
    )
    assert_golden("bootstrap/admin-pipe.yaml", boot)


def test_grpc_bootstrap_golden() -> None:
    assert_golden("bootstrap/grpc.yaml", grpc_xds_bootstrap(node_id="default.grpc-client", server_uri="127.0.0.1:5678"))
