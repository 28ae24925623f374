"""``StoreMirror`` alone: store events in, the mirrored resources and the marks for the next pass out.

Synchronous, no store: each test feeds ``ChangeEvent``s and reads ``Marks``.
"""

from __future__ import annotations

from typing import Any

from atoll.proxies.reconciler import ProxyKind
from atoll.proxies.reconciler.mesh_views import MeshViews
from atoll.proxies.reconciler.mirror import Marks, StoreMirror
from atoll.resources import Resource, decode
from atoll.resources.proxy_id import ProxyType
from atoll.store import ChangeEvent, EventKind


def dp(name: str, service: str, *, mesh: str = "default", version: int = 1, port: int = 8080) -> Resource[Any]:
    r = decode(
        {
            "type": "Dataplane",
            "mesh": mesh,
            "name": name,
            "networking": {"address": "10.0.0.1", "inbound": [{"port": port, "tags": {"kuma.io/service": service}}]},
        }
    )
    return r.with_meta(version=version)


def ev(r: Resource[Any], kind: EventKind = EventKind.CREATED) -> ChangeEvent:
    return ChangeEvent(kind, r, 1)


def ingress(services: list[tuple[str, str]], name: str = "zi-2", zone: str = "zone-2") -> Resource[Any]:
    return decode(
        {
            "type": "ZoneIngress",
            "name": name,
            "zone": zone,
            "networking": {"address": "10.2.0.1", "advertisedAddress": "10.2.0.1", "advertisedPort": 10001},
            "availableServices": [{"mesh": m, "instances": 1, "tags": {"kuma.io/service": s}} for m, s in services],
        }
    )


def mirror_with_meshes(*names: str) -> StoreMirror:
    m = StoreMirror("zone-1")
    for name in names:
        m.apply(ev(decode({"type": "Mesh", "name": name})))
    m.marks = Marks()  # start each test from no marks
    return m


def test_a_dataplane_marks_itself_and_the_services_it_serves_before_and_after() -> None:
    m = mirror_with_meshes("default")
    assert m.apply(ev(dp("backend-1", "backend"))) == 1
    assert m.marks.nodes == {"default": {"backend-1"}}
    assert m.marks.services == {"default": {"backend"}}
    assert m.marks.stale_views == {"default"} and not m.marks.meshes
    m.marks = Marks()
    m.apply(ev(dp("backend-1", "api", version=2), EventKind.UPDATED))  # now serves another service
    assert m.marks.services == {"default": {"backend", "api"}}
    assert m.marks.touched() == {"default"}
    assert m.marks.node_changed("default", "backend-1") and not m.marks.node_changed("default", "web")


def test_a_dataplane_already_mirrored_leaves_no_marks() -> None:
    m = mirror_with_meshes("default")
    m.upsert_dataplane(dp("web", "web", version=3))  # written by the lifecycle, its event follows
    m.marks = Marks()
    m.apply(ev(dp("web", "web", version=3)))
    assert m.marks == Marks()
    assert [r.name for r in m.all_dataplanes("default")] == ["web"]


def test_a_deleted_dataplane_is_listed_as_removed_and_its_services_marked() -> None:
    m = mirror_with_meshes("default")
    m.apply(ev(dp("db-1", "db")))
    m.marks = Marks()
    m.apply(ev(dp("db-1", "db"), EventKind.DELETED))
    assert m.marks.removed == [("default", "db-1")]
    assert m.marks.services == {"default": {"db"}} and not m.marks.nodes
    assert list(m.all_dataplanes()) == []
    m.marks = Marks()
    m.apply(ev(dp("db-1", "db"), EventKind.DELETED))  # deleting what is not mirrored: nothing
    assert m.marks.removed == [] and not m.marks.services


def test_a_mesh_or_a_policy_marks_every_proxy_of_its_mesh_only() -> None:
    m = mirror_with_meshes("default", "other")
    policy = decode(
        {
            "type": "MeshTimeout",
            "mesh": "other",
            "name": "t",
            "spec": {
                "targetRef": {"kind": "Mesh"},
                "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "20s"}}],
            },
        }
    )
    assert m.apply(ev(policy)) == 1
    assert m.marks.meshes == {"other"} and m.marks.stale_views == {"other"}
    assert m.policies["other"] == {("MeshTimeout", "t"): policy}
    assert not m.marks.zone_proxies
    m.apply(ev(policy, EventKind.DELETED))
    assert m.policies["other"] == {}
    m.marks = Marks()
    m.apply(ev(decode({"type": "Mesh", "name": "default"}), EventKind.UPDATED))
    assert m.marks.meshes == {"default"} and m.marks.stale_views == {"default"}


def test_types_generation_does_not_read_are_ignored() -> None:
    m = mirror_with_meshes("default")
    assert m.apply(ev(decode({"type": "Zone", "name": "zone-2"}))) == 0
    assert m.marks == Marks()


def test_a_zone_ingress_marks_the_services_it_advertises_before_and_after() -> None:
    m = mirror_with_meshes("default", "other")
    m.apply(ev(ingress([("default", "backend")])))
    assert m.marks.services == {"default": {"backend"}} and m.marks.zone_proxies
    m.marks = Marks()
    m.apply(ev(ingress([("other", "api")]), EventKind.UPDATED))
    assert m.marks.services == {"default": {"backend"}, "other": {"api"}}
    assert m.marks.stale_views == {"default", "other"}


def test_a_zone_egress_marks_every_mesh_and_the_zone_proxies() -> None:
    m = mirror_with_meshes("default", "other")
    egress = decode({"type": "ZoneEgress", "name": "ze", "zone": "zone-1", "networking": {"address": "10.0.0.9"}})
    m.apply(ev(egress))
    assert m.marks.meshes == {"default", "other"} and m.marks.all_views_stale and m.marks.zone_proxies
    assert [r.name for r in m.local_egresses()] == ["ze"]
    m.marks = Marks()
    m.upsert_egress(egress)  # the same spec again: only the zone proxies
    assert not m.marks.meshes and not m.marks.all_views_stale and m.marks.zone_proxies


def test_local_ingresses_leave_out_other_zones_and_copies_from_global() -> None:
    m = mirror_with_meshes()
    m.upsert_ingress(ingress([], name="mine", zone="zone-1"))
    m.upsert_ingress(ingress([], name="theirs", zone="zone-2"))
    m.upsert_ingress(ingress([], name="copy", zone="").with_meta(labels={"kuma.io/origin": "global"}))
    assert [r.name for r in m.local_ingresses()] == ["mine"]


def test_clear_pass_keeps_what_is_not_the_pass_s() -> None:
    m = mirror_with_meshes("default")
    m.apply(ev(dp("web", "web")))
    m.marks.zone_proxies = True
    m.marks.clear_pass()
    assert m.marks.touched() == set()
    assert m.marks.zone_proxies  # cleared by the publisher, not by the pass
    assert m.marks.stale_views == {"default"}  # taken by the mesh-view cache


def test_proxy_kinds_derive_from_the_proxy_type() -> None:
    assert ProxyKind.of(ProxyType.DATAPLANE) is ProxyKind.SIDECAR
    assert ProxyKind.of(ProxyType.DATAPLANE, proxyless=True) is ProxyKind.PROXYLESS
    assert ProxyKind.of(ProxyType.INGRESS) is ProxyKind.INGRESS
    assert ProxyKind.of(ProxyType.EGRESS, proxyless=True) is ProxyKind.EGRESS
    assert [k.value for k in ProxyKind] == ["sidecar", "proxyless", "ingress", "egress"]  # what insights say


def test_mesh_views_are_kept_until_the_mirror_marks_their_mesh_stale() -> None:
    m = mirror_with_meshes("default", "other")
    m.apply(ev(dp("backend-1", "backend")))
    views = MeshViews(m)
    first, other = views.view("default"), views.view("other")
    assert first is not None and other is not None
    assert views.view("default") is first and views.builds("default") == 1
    m.apply(ev(dp("backend-2", "backend", port=8081)))  # in mesh default only
    second = views.view("default")
    assert second is not first and second is not None and "backend-2" in second.index.dataplanes
    assert views.view("other") is other
    assert views.endpoint_delta(first, second) == {"backend": second.index.endpoints["backend"]}
    assert len(second.index.endpoints["backend"]) == 2
    m.upsert_egress(decode({"type": "ZoneEgress", "name": "ze", "networking": {"address": "10.0.0.9"}}))
    assert views.view("other") is not other  # a zone egress changes every mesh's view
    assert views.view("gone") is None
