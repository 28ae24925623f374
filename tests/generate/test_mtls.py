"""mTLS and MeshTrafficPermission: golden files (testdata/mtls/) and ``envoy --mode validate``.

Input: testdata/mesh-mtls.yaml (STRICT mesh; web -> backend (http), db (tcp); a zone-2 ingress)
plus the policies of each case. Regenerate with UPDATE_GOLDEN=1.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from atoll.topology import ProxyView, proxy_view
from atoll.xds.generate import sidecar_resources
from atoll.xds.generate.sidecar import MissingIdentity
from tests.generate.certs import fixed_identity
from tests.generate.envoy_validate import assert_valid, static_bootstrap
from tests.generate.golden import assert_golden, load_mesh_view

ALLOW_ALL = """
---
type: MeshTrafficPermission
mesh: default
name: allow-all
spec:
  targetRef: {kind: Mesh}
  from:
    - targetRef: {kind: Mesh}
      default: {action: Allow}
"""

DENY_WEB = """
---
type: MeshTrafficPermission
mesh: default
name: deny-web
spec:
  targetRef: {kind: MeshService, name: backend}
  from:
    - targetRef: {kind: MeshService, name: web}
      default: {action: Deny}
"""

DENY_ZONE_2 = """
---
type: MeshTrafficPermission
mesh: default
name: deny-zone-2
spec:
  targetRef: {kind: Mesh}
  from:
    - targetRef: {kind: MeshSubset, tags: {kuma.io/zone: zone-2}}
      default: {action: Deny}
    - targetRef: {kind: MeshServiceSubset, name: web, tags: {kuma.io/zone: zone-2, version: v2}}
      default: {action: Allow}
"""

SHADOW = """
---
type: MeshTrafficPermission
mesh: default
name: shadow-web
spec:
  targetRef: {kind: Dataplane, labels: {team: core}}
  from:
    - targetRef: {kind: MeshService, name: web}
      default: {action: AllowWithShadowDeny}
"""

RULES = """
---
type: MeshTrafficPermission
mesh: default
name: by-spiffe-id
spec:
  targetRef: {kind: Mesh}
  rules:
    - default:
        allow:
          - spiffeID: {type: Prefix, value: "spiffe://default/"}
        deny:
          - spiffeID: {type: Exact, value: "spiffe://default/web"}
"""

CASES: dict[str, tuple[str, str, str]] = {
    # golden name: (mesh file, extra policies, proxy)
    "strict-web-1": ("mesh-mtls.yaml", ALLOW_ALL, "web-1"),
    "strict-backend-1-no-policy": ("mesh-mtls.yaml", "", "backend-1"),
    "strict-backend-1-allow": ("mesh-mtls.yaml", ALLOW_ALL, "backend-1"),
    "strict-db-1-allow": ("mesh-mtls.yaml", ALLOW_ALL, "db-1"),
    "strict-backend-1-deny-web": ("mesh-mtls.yaml", ALLOW_ALL + DENY_WEB, "backend-1"),
    "strict-db-1-deny-zone-2": ("mesh-mtls.yaml", ALLOW_ALL + DENY_ZONE_2, "db-1"),
    "strict-backend-1-shadow": ("mesh-mtls.yaml", SHADOW, "backend-1"),
    "strict-db-1-rules": ("mesh-mtls.yaml", RULES + DENY_ZONE_2, "db-1"),
    "permissive-backend-1": ("mesh-mtls.yaml", ALLOW_ALL + DENY_WEB, "backend-1"),
    "permissive-db-1": ("mesh-mtls.yaml", ALLOW_ALL, "db-1"),
}


def _view(case: str) -> ProxyView:
    filename, extra, proxy = CASES[case]
    mv = load_mesh_view(filename, extra=extra)
    if case.startswith("permissive"):
        mtls = mv.mesh.spec.mtls
        assert mtls is not None
        backend = mtls.backends[0].model_copy(update={"mode": "PERMISSIVE"})
        spec = mv.mesh.spec.model_copy(update={"mtls": mtls.model_copy(update={"backends": [backend]})})
        mv = type(mv)(
            mesh=mv.mesh.with_spec(spec),
            dataplanes=mv.dataplanes,
            zone=mv.zone,
            zone_ingresses=mv.zone_ingresses,
            policies=mv.policies,
        )
    return proxy_view(mv, proxy)


@pytest.mark.parametrize("case", list(CASES))
def test_mtls_golden(case: str) -> None:
    resources = sidecar_resources(_view(case), fixed_identity())
    assert resources.check_consistent() == []
    assert_golden(f"mtls/{case}.yaml", resources.to_dict())


@pytest.mark.envoy
@pytest.mark.parametrize("case", list(CASES))
def test_mtls_config_passes_envoy_validate(case: str, tmp_path: Path) -> None:
    assert_valid(static_bootstrap(sidecar_resources(_view(case), fixed_identity())), tmp_path)


def test_mtls_needs_an_identity() -> None:
    with pytest.raises(MissingIdentity, match=r'mesh "default" has mTLS enabled .* proxy "web-1" needs an identity'):
        sidecar_resources(_view("strict-web-1"))


def test_secrets_and_references() -> None:
    res = sidecar_resources(_view("strict-web-1"), fixed_identity())
    assert [s.name for s in res.secrets] == ["identity_cert:secret:default", "mesh_ca:secret:default"]
    assert res.secrets[0].tls_certificate.certificate_chain.inline_string == fixed_identity().cert_pem
    assert res.secrets[1].validation_context.trusted_ca.inline_string == fixed_identity().ca_pem
    backend = next(c for c in res.clusters if c.name == "backend")
    assert backend.transport_socket.name == "envoy.transport_sockets.tls"
    from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

    ctx = tls_pb2.UpstreamTlsContext()
    assert backend.transport_socket.typed_config.Unpack(ctx)
    assert ctx.sni == "backend{mesh=default}"
    common = ctx.common_tls_context
    assert [c.name for c in common.tls_certificate_sds_secret_configs] == ["identity_cert:secret:default"]
    assert common.tls_certificate_sds_secret_configs[0].sds_config.HasField("ads")
    validation = common.combined_validation_context
    assert validation.validation_context_sds_secret_config.name == "mesh_ca:secret:default"
    (san,) = validation.default_validation_context.match_typed_subject_alt_names
    assert san.matcher.exact == "spiffe://default/backend"
    # the local application cluster stays plaintext
    assert not next(c for c in res.clusters if c.name.startswith("localhost:")).HasField("transport_socket")


def test_permissive_has_tls_and_plaintext_chains() -> None:
    (listener,) = [x for x in sidecar_resources(_view("permissive-db-1"), fixed_identity()).listeners]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    chains: list[listener_components_pb2.FilterChain] = list(listener.filter_chains)
    assert [c.filter_chain_match.transport_protocol for c in chains] == ["tls", "raw_buffer"]
    assert [f.name for f in chains[0].filters] == ["envoy.filters.network.rbac", "envoy.filters.network.tcp_proxy"]
    assert [f.name for f in chains[1].filters] == ["envoy.filters.network.tcp_proxy"]
    assert chains[0].HasField("transport_socket") and not chains[1].HasField("transport_socket")


def test_http_inbound_gets_http_rbac_before_router() -> None:
    res = sidecar_resources(_view("strict-backend-1-allow"), fixed_identity())
    (listener,) = [x for x in res.listeners if x.name.startswith("inbound:")]
    manager = hcm_pb2.HttpConnectionManager()
    assert listener.filter_chains[0].filters[0].typed_config.Unpack(manager)
    assert [f.name for f in manager.http_filters] == ["envoy.filters.http.rbac", "envoy.filters.http.router"]


def test_without_mtls_no_tls_and_no_rbac() -> None:
    res = sidecar_resources(proxy_view(load_mesh_view(extra=ALLOW_ALL), "backend-1"))
    assert res.secrets == ()
    text = str(res.to_dict())
    assert "rbac" not in text and "tls" not in text


def test_generation_is_byte_stable_whatever_the_input_order() -> None:
    a = sidecar_resources(
        proxy_view(load_mesh_view("mesh-mtls.yaml", extra=ALLOW_ALL + DENY_ZONE_2 + RULES), "db-1"), fixed_identity()
    )
    b = sidecar_resources(
        proxy_view(load_mesh_view("mesh-mtls.yaml", extra=RULES + DENY_ZONE_2 + ALLOW_ALL), "db-1"), fixed_identity()
    )
    assert a == b
    assert [m.SerializeToString(deterministic=True) for m in a.listeners] == [
        m.SerializeToString(deterministic=True) for m in b.listeners
    ]
