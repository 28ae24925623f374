"""Transparent proxying: the view of a Dataplane with ``networking.transparentProxying`` (captured
outbounds from a hand-made names table, explicit wins, VirtualOutbound subsets, dependents, the
endpoint fast path), its Envoy config (golden files under testdata/transparent/, ``envoy --mode
validate``), and that a Dataplane without it is unaffected by the table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from atoll.resources.models.mesh import MeshSpec
from atoll.topology import proxy_view
from atoll.topology.service_names import ServiceNames, VirtualName
from atoll.topology.tags import Tags
from atoll.topology.view import MeshView, dependents, endpoints_by_service, with_endpoints
from atoll.xds.generate import sidecar_resources
from atoll.xds.generate.capture import DNS_FILTER, OUTBOUND_PASSTHROUGH
from atoll.xds.generate.sidecar import sidecar_endpoint_update
from tests.generate.envoy_validate import assert_valid, static_bootstrap
from tests.generate.golden import assert_golden, load_mesh_view

NAMES = ServiceNames(
    (
        VirtualName(
            "backend.i1.mesh", "240.0.0.3", (80,), "backend", Tags({"kuma.io/instance": "i1"}), "VirtualOutbound/inst"
        ),
        VirtualName(
            "backend.i2.mesh", "240.0.0.4", (80,), "backend", Tags({"kuma.io/instance": "i2"}), "VirtualOutbound/inst"
        ),
        VirtualName("backend.mesh", "240.0.0.1", (80, 8080), "backend"),
        VirtualName("db.mesh", "240.0.0.2", (80, 5432), "db"),
    )
)


def _mesh_view(names: ServiceNames = NAMES, extra: str = "") -> MeshView:
    base = load_mesh_view("transparent/mesh.yaml", extra=extra)
    return replace(base, names=names)


def test_captured_outbounds_follow_the_names_table_and_explicit_wins() -> None:
    view = proxy_view(_mesh_view(), "client-1")
    got = [(o.address, o.port, o.service, dict(o.subset), o.captured) for o in view.outbounds]
    assert got == [
        ("240.0.0.1", 80, "backend", {}, True),
        ("240.0.0.1", 8080, "backend", {}, True),
        ("240.0.0.2", 80, "db", {}, True),
        ("240.0.0.2", 5432, "db", {}, True),
        ("240.0.0.3", 80, "backend", {}, False),  # the explicit outbound, not backend.i1.mesh
        ("240.0.0.4", 80, "backend", {"kuma.io/instance": "i2"}, True),
    ]
    i2 = view.outbounds[-1]
    assert [ep.tags["kuma.io/instance"] for ep in i2.endpoints] == ["i2"]
    assert len(view.outbounds[0].endpoints) == 2
    assert all(ib.captured for ib in view.inbounds)
    assert view.transparent is not None
    assert (view.transparent.outbound_port, view.transparent.inbound_port, view.transparent.passthrough) == (
        15001,
        15006,
        True,
    )
    assert view.transparent.dns == (
        ("backend.i1.mesh", "240.0.0.3"),
        ("backend.i2.mesh", "240.0.0.4"),
        ("backend.mesh", "240.0.0.1"),
        ("db.mesh", "240.0.0.2"),
    )


def test_a_dataplane_without_transparent_proxying_ignores_the_table() -> None:
    with_names = proxy_view(_mesh_view(), "backend-1")
    without = proxy_view(_mesh_view(ServiceNames()), "backend-1")
    assert with_names == without
    assert with_names.transparent is None and not any(ib.captured for ib in with_names.inbounds)


def test_reachable_services_narrow_the_names() -> None:
    extra = """
---
type: Dataplane
mesh: default
name: narrow-1
networking:
  address: 10.0.0.9
  inbound:
    - port: 8080
      tags:
        kuma.io/service: narrow
  transparentProxying:
    redirectPortInbound: 15006
    redirectPortOutbound: 15001
    reachableServices: [db]
"""
    view = proxy_view(_mesh_view(extra=extra), "narrow-1")
    assert {(o.address, o.port) for o in view.outbounds} == {("240.0.0.2", 80), ("240.0.0.2", 5432)}
    assert view.transparent is not None and view.transparent.dns == (("db.mesh", "240.0.0.2"),)


def test_endpoint_changes_reach_transparent_proxies_and_keep_subsets() -> None:
    mesh_view = _mesh_view()
    assert "client-1" in dependents(mesh_view, {"db"})
    old = proxy_view(mesh_view, "client-1")
    smaller = _mesh_view(extra="")
    endpoints = dict(endpoints_by_service(smaller))
    endpoints["backend"] = tuple(ep for ep in endpoints["backend"] if ep.tags["kuma.io/instance"] == "i1")
    new = with_endpoints(old, {"backend": endpoints["backend"]})
    i2 = new.outbounds[-1]
    assert i2.subset == Tags({"kuma.io/instance": "i2"}) and i2.endpoints == ()
    assert len(new.outbounds[0].endpoints) == 1
    update = sidecar_endpoint_update(old, new)
    assert update is not None
    assert sorted(cla.cluster_name for cla in update) == ["backend", "backend{kuma.io/instance=i2}"]


def test_golden_transparent_client() -> None:
    resources = sidecar_resources(proxy_view(_mesh_view(), "client-1"))
    assert resources.check_consistent() == []
    assert_golden("transparent/client-1.yaml", resources.to_dict())


def test_golden_no_passthrough() -> None:
    base = _mesh_view()
    spec = MeshSpec.model_validate({"networking": {"outbound": {"passthrough": False}}})
    no_passthrough = replace(base, mesh=replace(base.mesh, spec=spec))
    view = proxy_view(no_passthrough, "client-1")
    assert view.transparent is not None and view.transparent.passthrough is False
    resources = sidecar_resources(view)
    cluster = next(c for c in resources.clusters if c.name == OUTBOUND_PASSTHROUGH)
    assert cluster.type == cluster.STATIC and not cluster.load_assignment.endpoints
    assert_golden("transparent/client-1-no-passthrough.yaml", resources.to_dict())


def test_dns_listener_serves_the_table() -> None:
    resources = sidecar_resources(proxy_view(_mesh_view(), "client-1"))
    dns = next(lst for lst in resources.listeners if lst.name == "dns:15053")
    assert dns.listener_filters[0].name == DNS_FILTER
    assert dns.address.socket_address.protocol == dns.address.socket_address.UDP


@pytest.mark.envoy
@pytest.mark.parametrize("name", ["client-1", "backend-1"])
def test_transparent_config_passes_envoy_validate(name: str, tmp_path: Path) -> None:
    assert_valid(static_bootstrap(sidecar_resources(proxy_view(_mesh_view(), name))), tmp_path)
