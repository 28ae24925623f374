"""Zone egress and ExternalServices, pure: views (endpoints through the egress, weights kept, pinned
services), golden Envoy config of a sidecar with and without egress routing, of the egress and of the
ingress that offers a pinned ExternalService, and Envoy's own ``--mode validate`` on them."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from atoll.resources import Resource, decode_all
from atoll.topology import EGRESS_SERVICE, MeshView, proxy_view
from atoll.topology.egress import egress_view
from atoll.topology.ingress import available_services, ingress_view
from atoll.xds.generate import sidecar_resources
from atoll.xds.generate.egress import egress_resources
from atoll.xds.generate.ingress import ingress_resources
from atoll.xds.generate.resources import message_to_dict
from tests.generate.certs import CERTS, fixed_identity
from tests.generate.envoy_validate import assert_valid, static_bootstrap
from tests.generate.golden import TESTDATA, assert_golden

FAKE_CA = "        -----BEGIN CERTIFICATE-----\n        MIIBfake\n        -----END CERTIFICATE-----\n"


def _resources(extra: str = "", *, zone_egress: bool = True) -> list[Resource[Any]]:
    text = (TESTDATA / "egress" / "mesh.yaml").read_text()
    text = text.replace(FAKE_CA, textwrap.indent((CERTS / "ca.pem").read_text(), " " * 8))
    if not zone_egress:
        text = text.replace("routing:\n  zoneEgress: true\n", "")
    return decode_all(text + extra)


def mesh_view(extra: str = "", *, zone: str = "zone-1", zone_egress: bool = True, egresses: bool = True) -> MeshView:
    rs = _resources(extra, zone_egress=zone_egress)
    by = lambda t: tuple(r for r in rs if r.type == t)  # noqa: E731
    return MeshView(
        mesh=by("Mesh")[0],
        dataplanes=by("Dataplane"),
        zone=zone,
        zone_ingresses=by("ZoneIngress"),
        policies=tuple(r for r in rs if r.type.startswith("Mesh") and r.type != "Mesh"),
        external_services=by("ExternalService"),
        zone_egresses=by("ZoneEgress") if egresses else (),
    )


def zone_egress() -> Resource[Any]:
    return next(r for r in _resources() if r.type == "ZoneEgress")


def outbound(view: MeshView, service: str) -> Any:
    return next(o for o in proxy_view(view, "web-1").outbounds if o.service == service)


# --- views ------------------------------------------------------------------------------------


def test_remote_endpoints_go_through_the_local_egress_with_the_same_weight_and_zone() -> None:
    backend = outbound(mesh_view(), "backend")
    assert [(e.address, e.port, e.zone, e.weight, e.egress) for e in backend.endpoints] == [
        ("10.0.0.2", 8080, "zone-1", None, False),
        ("10.0.0.9", 10002, "zone-2", 2, True),
    ]
    direct = outbound(mesh_view(zone_egress=False), "backend")
    assert [(e.address, e.port, e.zone, e.weight) for e in direct.endpoints] == [
        ("10.0.0.2", 8080, "zone-1", None),
        ("192.168.2.1", 10001, "zone-2", 2),
    ]


def test_without_a_local_egress_remote_zones_are_unreachable_when_routing_says_egress() -> None:
    backend = outbound(mesh_view(egresses=False), "backend")
    assert [e.zone for e in backend.endpoints] == ["zone-1"]


def test_external_services_direct_or_through_the_egress() -> None:
    ext = outbound(mesh_view(zone_egress=False), "ext-http")
    assert ext.external is not None and not ext.via_egress
    assert [(e.address, e.port) for e in ext.endpoints] == [("httpbin.example.com", 80)]
    via = outbound(mesh_view(), "ext-http")
    assert via.via_egress and [(e.address, e.port, e.egress) for e in via.endpoints] == [("10.0.0.9", 10002, True)]
    tls = outbound(mesh_view(), "ext-tls")
    assert tls.protocol == "tcp" and tls.external.tls.server_name == "api.example.com"


def test_pinned_external_service_goes_to_its_zone() -> None:
    # Through the local egress (routing on), or straight to zone-2's ingress (routing off).
    on = outbound(mesh_view(), "ext-pinned")
    assert on.via_egress and [(e.address, e.zone) for e in on.endpoints] == [("10.0.0.9", "zone-2")]
    off = outbound(mesh_view(zone_egress=False), "ext-pinned")
    assert off.via_egress and [(e.address, e.port, e.zone) for e in off.endpoints] == [("192.168.2.1", 10001, "zone-2")]


def test_a_mesh_service_wins_over_an_external_service_of_the_same_name() -> None:
    extra = """---
type: ExternalService
mesh: default
name: backend-outside
networking:
  address: 1.2.3.4:80
tags:
  kuma.io/service: backend
"""
    view = mesh_view(extra)
    backend = outbound(view, "backend")
    assert backend.external is None
    assert "1.2.3.4" not in {e.address for e in backend.endpoints}
    assert view.index.conflicts == (
        'ExternalService "backend-outside": kuma.io/service "backend" is also served by Dataplanes of the mesh; '
        "the mesh service is used",
    )


def test_two_external_services_claiming_one_service_conflict_and_the_first_by_name_wins() -> None:
    extra = """---
type: ExternalService
mesh: default
name: zz-ext-http-too
networking:
  address: 5.6.7.8:80
tags:
  kuma.io/service: ext-http
  kuma.io/protocol: tcp
"""
    view = mesh_view(extra)
    assert outbound(view, "ext-http").external.host == "httpbin.example.com"
    assert view.index.conflicts == (
        'ExternalService "zz-ext-http-too": kuma.io/service "ext-http" is already taken by ExternalService '
        '"ext-http"; that one is used',
    )
    ev = egress_view("egress-1", zone_egress(), [view])
    assert ev.conflicts == tuple(f"mesh default: {c}" for c in view.index.conflicts)


def test_egress_view_passes_remote_services_through_and_terminates_external_ones() -> None:
    view = egress_view("egress-1", zone_egress(), [mesh_view()])
    assert [(r.sni, r.cluster, [(e.address, e.zone, e.weight) for e in r.endpoints]) for r in view.passthrough] == [
        ("backend{mesh=default}", "default:backend", [("192.168.2.1", "zone-2", 2)]),
        ("db{mesh=default}", "default:db", [("192.168.2.1", "zone-2", 1)]),
        ("ext-pinned{mesh=default}", "default:ext-pinned", [("192.168.2.1", "zone-2", 1)]),
    ]
    assert [(r.sni, r.cluster) for r in view.externals] == [
        ("ext-http{mesh=default}", "external:default:ext-http"),
        ("ext-tls{mesh=default}", "external:default:ext-tls"),
    ]
    http = view.externals[0]
    assert [(dict(p.source), p.action) for p in http.permissions] == [
        ({}, "Allow"),
        ({"kuma.io/service": "intruder"}, "Deny"),
    ]
    assert view.meshes == ("default",)


def test_zone_2_offers_its_pinned_external_service_through_its_ingress() -> None:
    z2 = mesh_view(zone="zone-2")
    # zone-2 has egress-1 too in this view (zone filter: the egress of zone-1 is not zone-2's).
    assert z2.index.egresses == ()
    z2 = MeshView(
        mesh=z2.mesh,
        dataplanes=(),
        zone="zone-2",
        external_services=z2.external_services,
        zone_egresses=tuple(
            r.with_spec(r.spec.model_copy(update={"zone": "zone-2"})) for r in _resources() if r.type == "ZoneEgress"
        ),
    )
    assert available_services([z2]) == [
        {
            "tags": {"kuma.io/protocol": "http", "kuma.io/service": "ext-pinned", "kuma.io/zone": "zone-2"},
            "instances": 1,
            "mesh": "default",
            "externalService": True,
        }
    ]
    zi = next(r for r in _resources() if r.type == "ZoneIngress")
    iv = ingress_view("ingress-zone-2", zi, [z2])
    assert [(r.sni, [(e.address, e.port) for e in r.endpoints]) for r in iv.routes] == [
        ("ext-pinned{mesh=default}", [("10.0.0.9", 10002)])
    ]
    assert_golden("egress/ingress-zone-2.yaml", ingress_resources(iv).to_dict())


# --- Envoy config -----------------------------------------------------------------------------

CASES = {
    "sidecar-web-1-via-egress": lambda: sidecar_resources(proxy_view(mesh_view(), "web-1"), fixed_identity()),
    "sidecar-web-1-direct": lambda: sidecar_resources(
        proxy_view(mesh_view(zone_egress=False), "web-1"), fixed_identity()
    ),
    "egress-1": lambda: egress_resources(
        egress_view("egress-1", zone_egress(), [mesh_view()]), {"default": fixed_identity()}
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    res = CASES[case]()
    assert res.check_consistent() == []
    assert_golden(f"egress/{case}.yaml", res.to_dict())


@pytest.mark.parametrize("case", sorted(CASES))
def test_envoy_validates(case: str, tmp_path: Path) -> None:
    assert_valid(static_bootstrap(CASES[case]()), tmp_path)


def test_sidecar_expects_the_egress_identity_for_external_services() -> None:
    res = CASES["sidecar-web-1-via-egress"]()
    clusters = {c.name: message_to_dict(c) for c in res.clusters}
    ext = str(clusters["ext-http"]["transport_socket"])
    assert f"spiffe://default/{EGRESS_SERVICE}" in ext and "ext-http{mesh=default}" in ext
    backend = str(clusters["backend"]["transport_socket"])
    assert "spiffe://default/backend" in backend  # pass-through: the backend itself answers


def test_egress_without_the_mesh_identity_leaves_external_routes_out() -> None:
    res = egress_resources(egress_view("egress-1", zone_egress(), [mesh_view()]), {})
    assert {c.name for c in res.clusters} == {
        "default:backend",
        "default:db",
        "default:ext-pinned",
        "egress:unknown-sni",
    }
    assert res.secrets == ()
