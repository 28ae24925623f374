"""Unit tests of the per-proxy view: inbounds, outbounds, endpoints, protocols, dependencies."""

from __future__ import annotations

import pytest

from atoll.resources import decode_all
from atoll.topology import (
    MeshView,
    OutboundView,
    Tags,
    common_protocol,
    dependencies,
    dependents,
    endpoints_by_service,
    protocol_of,
    proxy_view,
    service_protocol,
    services,
    sni,
    spiffe_id,
)
from tests.generate.golden import load_mesh_view


def _by_service(outbounds: tuple[OutboundView, ...]) -> dict[str, OutboundView]:
    return {o.service: o for o in outbounds}


def test_inbound_defaults_and_overrides() -> None:
    mv = load_mesh_view()
    (b1,) = proxy_view(mv, "backend-1").inbounds
    assert (b1.service, b1.protocol, b1.address, b1.port) == ("backend", "http", "10.0.0.2", 8080)
    assert (b1.service_address, b1.service_port, b1.ready) == ("127.0.0.1", 8080, True)
    assert b1.tags == {"kuma.io/service": "backend", "kuma.io/protocol": "http", "version": "v1"}

    (b2,) = proxy_view(mv, "backend-2").inbounds
    assert (b2.address, b2.port, b2.service_address, b2.service_port) == ("10.0.0.3", 8080, "127.0.0.2", 9090)

    (b3,) = proxy_view(mv, "backend-3").inbounds
    assert b3.ready is False


def test_inbound_address_overrides_networking_address() -> None:
    db = proxy_view(load_mesh_view(), "db-1")
    assert [(i.service, i.address, i.port, i.protocol) for i in db.inbounds] == [
        ("db", "10.0.0.5", 5432, "tcp"),
        ("mixed", "10.0.1.5", 7000, "tcp"),
    ]


def test_outbound_endpoints_are_the_ready_inbounds_of_the_service() -> None:
    web = proxy_view(load_mesh_view(), "web-1")
    backend = _by_service(web.outbounds)["backend"]
    assert (backend.address, backend.port, backend.protocol) == ("127.0.0.1", 10001, "http")
    eps = backend.endpoints
    # backend-3 is not ready; backend-2 is reached at its advertised address.
    assert [(e.address, e.port, e.dataplane, e.zone, e.weight) for e in eps] == [
        ("10.0.0.2", 8080, "backend-1", "zone-1", None),
        ("192.168.0.3", 8080, "backend-2", "zone-1", None),
    ]
    assert eps[0].tags["version"] == "v1" and eps[0].service == "backend"
    assert _by_service(web.outbounds)["ghost"].endpoints == ()


def test_outbounds_are_sorted_by_address_and_port() -> None:
    web = proxy_view(load_mesh_view(), "web-1")
    assert [o.port for o in web.outbounds] == sorted(o.port for o in web.outbounds)
    assert [o.service for o in web.outbounds] == ["backend", "db", "echo", "stream", "mixed", "ghost"]


def test_protocol_resolution() -> None:
    mv = load_mesh_view()
    assert service_protocol(mv, "backend") == "http"
    assert service_protocol(mv, "echo") == "grpc"
    assert service_protocol(mv, "stream") == "http2"
    assert service_protocol(mv, "db") == "tcp"  # no tag
    assert service_protocol(mv, "mixed") == "tcp"  # http on echo-1, tcp on db-1
    assert service_protocol(mv, "ghost") == "tcp"  # no inbound anywhere
    assert {o.service: o.protocol for o in proxy_view(mv, "web-1").outbounds}["mixed"] == "tcp"
    assert common_protocol(["http", "http"]) == "http"
    assert common_protocol(["http", "http2"]) == "tcp"
    assert common_protocol([]) == "tcp"
    assert protocol_of({"kuma.io/protocol": "grpc"}) == "grpc"
    assert protocol_of({"kuma.io/protocol": "nonsense"}) == "tcp"


def test_protocol_counts_unready_inbounds() -> None:
    mv = _mesh(
        _dp("a", "10.0.0.1", "svc", 80, protocol="http"),
        _dp("b", "10.0.0.2", "svc", 80, protocol="http", ready=False),
    )
    assert service_protocol(mv, "svc") == "http"
    assert [e.dataplane for e in endpoints_by_service(mv)["svc"]] == ["a"]


def test_not_ready_state_excludes_the_endpoint() -> None:
    mv = _mesh(_dp("a", "10.0.0.1", "svc", 80, extra="      state: NotReady\n"), _dp("b", "10.0.0.2", "svc", 80))
    assert [e.dataplane for e in endpoints_by_service(mv)["svc"]] == ["b"]
    assert proxy_view(mv, "a").inbounds[0].ready is False


def test_zone_tag_sets_the_endpoint_locality() -> None:
    mv = _mesh(_dp("a", "10.0.0.1", "svc", 80, extra_tags={"kuma.io/zone": "zone-9"}), _dp("b", "10.0.0.2", "svc", 80))
    assert [(e.dataplane, e.zone) for e in endpoints_by_service(mv)["svc"]] == [("b", "zone-1"), ("a", "zone-9")]


def test_dependencies_services_dependents() -> None:
    mv = load_mesh_view()
    dps = {dp.name: dp for dp in mv.dataplanes}
    assert dependencies(dps["web-1"]) == {"backend", "db", "echo", "stream", "mixed", "ghost"}
    assert dependencies(dps["db-1"]) == frozenset()
    assert services(dps["echo-1"]) == {"echo", "stream", "mixed"}
    assert services(dps["backend-3"]) == {"backend"}
    assert dependents(mv, {"db"}) == {"web-1", "backend-1"}
    assert dependents(mv, {"echo"}) == {"web-1", "grpc-client"}
    assert dependents(mv, {"nothing"}) == frozenset()


def test_index_is_built_once_and_shared_by_proxy_views() -> None:
    mv = load_mesh_view()
    index = endpoints_by_service(mv)
    assert endpoints_by_service(mv) is index
    backend = _by_service(proxy_view(mv, "web-1").outbounds)["backend"]
    assert backend.endpoints is index["backend"]


def test_views_are_equal_hashable_values() -> None:
    a = proxy_view(load_mesh_view(), "web-1")
    b = proxy_view(load_mesh_view(), "web-1")
    assert a == b and hash(a) == hash(b)
    c = proxy_view(load_mesh_view(extra=_dp("backend-9", "10.0.0.99", "backend", 8080, protocol="http")), "web-1")
    assert c != a
    # A change to a service web-1 does not reach leaves its view equal.
    d = proxy_view(load_mesh_view(extra=_dp("other-1", "10.0.0.98", "other", 80)), "web-1")
    assert d == a


def test_unknown_dataplane_and_foreign_mesh() -> None:
    mv = load_mesh_view()
    with pytest.raises(KeyError, match="nope"):
        proxy_view(mv, "nope")
    other = decode_all(_dp("x", "10.0.0.1", "svc", 80).replace("mesh: default", "mesh: other"))
    with pytest.raises(ValueError, match='"x" is in mesh "other"'):
        MeshView(mesh=mv.mesh, dataplanes=(*mv.dataplanes, *other), zone="zone-1")


def test_mtls_sni_and_spiffe() -> None:
    assert proxy_view(load_mesh_view(), "web-1").mtls is None
    mv = _mesh(_dp("a", "10.0.0.1", "svc", 80), mtls=True)
    view = proxy_view(mv, "a")
    assert view.mtls is not None and (view.mtls.backend, view.mtls.mode) == ("ca-1", "STRICT")
    assert view.sni("backend") == "backend{mesh=default}"
    assert sni("backend", "default", {"kuma.io/service": "backend", "version": "v1"}) == (
        "backend{mesh=default,version=v1}"
    )
    assert view.spiffe_id("backend") == spiffe_id("default", "backend") == "spiffe://default/backend"


INGRESSES = """
---
type: ZoneIngress
name: ingress-zone-2
zone: zone-2
networking:
  address: 10.2.0.1
  advertisedAddress: 203.0.113.2
  advertisedPort: 10001
availableServices:
  - tags: {kuma.io/service: svc, kuma.io/protocol: http}
    instances: 3
    mesh: default
  - tags: {kuma.io/service: svc, kuma.io/protocol: http}
    instances: 5
    mesh: other
  - tags: {kuma.io/service: gone}
    instances: 0
    mesh: default
---
type: ZoneIngress
name: ingress-zone-1
zone: zone-1
networking:
  address: 10.1.0.1
  advertisedAddress: 203.0.113.1
  advertisedPort: 10001
availableServices:
  - tags: {kuma.io/service: svc}
    instances: 1
    mesh: default
---
type: ZoneIngress
name: ingress-zone-3-unadvertised
zone: zone-3
networking:
  address: 10.3.0.1
availableServices:
  - tags: {kuma.io/service: svc}
    instances: 1
    mesh: default
"""


def test_remote_zone_ingress_endpoints_with_mtls() -> None:
    mv = _mesh(_dp("a", "10.0.0.1", "svc", 80, protocol="http") + INGRESSES, mtls=True)
    eps = endpoints_by_service(mv)["svc"]
    assert [(e.address, e.port, e.zone, e.weight, e.ingress, e.dataplane) for e in eps] == [
        ("10.0.0.1", 80, "zone-1", None, False, "a"),
        ("203.0.113.2", 10001, "zone-2", 3, True, None),
    ]
    assert service_protocol(mv, "svc") == "http"
    assert "gone" not in endpoints_by_service(mv)


def test_remote_zone_ingress_endpoints_need_mtls() -> None:
    mv = _mesh(_dp("a", "10.0.0.1", "svc", 80) + INGRESSES, mtls=False)
    assert [e.ingress for e in endpoints_by_service(mv)["svc"]] == [False]


def test_tags_mapping() -> None:
    t = Tags({"b": "2", "a": "1"})
    assert list(t) == ["a", "b"] and t == {"a": "1", "b": "2"} and len(t) == 2
    assert hash(t) == hash(Tags([("a", "1"), ("b", "2")]))
    assert t.without("a") == {"b": "2"}


def _dp(
    name: str,
    address: str,
    service: str,
    port: int,
    *,
    protocol: str | None = None,
    ready: bool = True,
    extra: str = "",
    extra_tags: dict[str, str] | None = None,
) -> str:
    tags = {"kuma.io/service": service, **({"kuma.io/protocol": protocol} if protocol else {}), **(extra_tags or {})}
    tag_lines = "".join(f"        {k}: {v}\n" for k, v in tags.items())
    health = "" if ready else "      health:\n        ready: false\n"
    return (
        f"\n---\ntype: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {address}\n"
        f"  inbound:\n    - port: {port}\n{health}{extra}      tags:\n{tag_lines}"
    )


def _mesh(*docs: str, mtls: bool = False) -> MeshView:
    mesh = "type: Mesh\nname: default\n"
    if mtls:
        mesh += "mtls:\n  enabledBackend: ca-1\n  backends:\n    - name: ca-1\n      type: builtin\n"
    resources = decode_all(mesh + "".join(docs))
    return MeshView(
        mesh=next(r for r in resources if r.type == "Mesh"),
        dataplanes=tuple(r for r in resources if r.type == "Dataplane"),
        zone_ingresses=tuple(r for r in resources if r.type == "ZoneIngress"),
        zone="zone-1",
    )
