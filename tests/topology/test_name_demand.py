"""Names a mesh wants (``atoll.topology.name_demand``) and VirtualOutbound validation and rendering."""

from __future__ import annotations

from typing import Any

import pytest

from atoll.errors import InvalidInput
from atoll.resources import Resource, decode
from atoll.topology.ingress import ingress_view
from atoll.topology.name_demand import NameDemand, dataplane_destinations, destinations, name_demand
from atoll.topology.service_names import ServiceNames, VirtualName
from atoll.topology.tags import Tags
from atoll.topology.view import MeshView


def dp(name: str, inbound_port: int, state: str | None = None, **tags: str) -> Resource[Any]:
    inbound: dict[str, Any] = {"port": inbound_port, "tags": tags}
    if state is not None:
        inbound["state"] = state
    return decode(
        {
            "type": "Dataplane",
            "mesh": "default",
            "name": name,
            "networking": {"address": "10.0.0.1", "inbound": [inbound]},
        }
    )


def vo(
    name: str, host: str, port: str, *params: tuple[str, str], match: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "type": "VirtualOutbound",
        "mesh": "default",
        "name": name,
        "selectors": [{"match": match or {"kuma.io/service": "*"}}],
        "conf": {"host": host, "port": port, "parameters": [{"name": n, "tagKey": k} for n, k in params]},
    }


def ingress(zone: str, *entries: dict[str, str]) -> Resource[Any]:
    return decode(
        {
            "type": "ZoneIngress",
            "name": f"ingress-{zone}",
            "zone": zone,
            "networking": {"address": "10.2.0.1", "advertisedAddress": "10.2.0.1", "advertisedPort": 10001},
            "availableServices": [{"mesh": "default", "instances": 1, "tags": t} for t in entries],
        }
    )


def demand(dps: list[Resource[Any]], vos: list[dict[str, Any]] = (), ingresses=(), externals=()) -> NameDemand:  # type: ignore[assignment]
    dests = destinations(
        "default", "zone-1", [dataplane_destinations(d) for d in dps], list(ingresses), [decode(e) for e in externals]
    )
    return name_demand(dests, [decode(v) for v in vos])


def rows(d: NameDemand) -> list[tuple[str, tuple[int, ...], str, dict[str, str], str]]:
    return [(n.hostname, n.ports, n.service, dict(n.tags), n.origin) for n in d.names]


def test_services_here_and_in_other_zones_get_mesh_names() -> None:
    d = demand(
        [
            dp("b1", 8080, **{"kuma.io/service": "backend"}),
            dp("b2", 8081, **{"kuma.io/service": "backend"}),
            dp("ignored", 9000, state="Ignored", **{"kuma.io/service": "nobody"}),
        ],
        ingresses=[
            ingress("zone-2", {"kuma.io/service": "remote-only"}),
            ingress("zone-1", {"kuma.io/service": "mine"}),
        ],
    )
    assert rows(d) == [
        ("backend.mesh", (80, 8080, 8081), "backend", {}, "service"),
        ("remote-only.mesh", (80,), "remote-only", {}, "service"),
    ]
    assert d.hostnames() == {"backend.mesh", "remote-only.mesh"}


def test_an_underscored_service_gets_a_dotted_alias_on_the_same_vip() -> None:
    d = demand([dp("b1", 80, **{"kuma.io/service": "backend_default_svc_80"})])
    assert [(n.hostname, n.key) for n in d.names] == [
        ("backend.default.svc.80.mesh", "backend_default_svc_80.mesh"),
        ("backend_default_svc_80.mesh", "backend_default_svc_80.mesh"),
    ]
    assert d.hostnames() == {"backend_default_svc_80.mesh"}
    table = d.table({"backend_default_svc_80.mesh": "240.0.0.7"})
    assert {n.vip for n in table} == {"240.0.0.7"} and len(table) == 2


def test_a_service_name_that_is_no_dns_name_is_reported() -> None:
    d = demand([dp("b1", 80, **{"kuma.io/service": "bad name!"})])
    assert d.names == ()
    assert d.problems == ('service "bad name!": "bad name!.mesh" is not a DNS name, it gets no VIP',)


def test_external_services_get_their_service_name_and_their_host() -> None:
    es = {
        "type": "ExternalService",
        "mesh": "default",
        "name": "httpbin",
        "networking": {"address": "httpbin.org:443"},
        "tags": {"kuma.io/service": "httpbin"},
    }
    by_ip = {**es, "name": "ip", "networking": {"address": "10.1.1.1:5432"}, "tags": {"kuma.io/service": "db"}}
    hidden = {**es, "name": "hidden", "networking": {"address": "hidden.example:80", "disableHostDNSEntry": True}}
    hidden["tags"] = {"kuma.io/service": "hidden"}
    assert rows(demand([], externals=[es, by_ip, hidden])) == [
        ("db.mesh", (80, 5432), "db", {}, "service"),
        ("hidden.mesh", (80,), "hidden", {}, "service"),
        ("httpbin.mesh", (80, 443), "httpbin", {}, "service"),
        ("httpbin.org", (80, 443), "httpbin", {}, "ExternalService/httpbin"),
    ]


def test_a_virtual_outbound_renders_one_name_per_instance_here_and_remote() -> None:
    per_instance = vo(
        "per-instance", "{{.svc}}.{{.inst}}.mesh", "8080", ("svc", "kuma.io/service"), ("inst", "kuma.io/instance")
    )
    d = demand(
        [
            dp("b1", 9000, **{"kuma.io/service": "backend", "kuma.io/instance": "b1"}),
            dp("b2", 9000, **{"kuma.io/service": "backend", "kuma.io/instance": "b2"}),
            dp("web", 9001, **{"kuma.io/service": "web"}),  # no instance tag: nothing rendered
        ],
        [per_instance],
        ingresses=[ingress("zone-2", {"kuma.io/service": "backend", "kuma.io/instance": "b3"})],
    )
    vo_rows = [r for r in rows(d) if r[4] != "service"]
    assert vo_rows == [
        ("backend.b1.mesh", (8080,), "backend", {"kuma.io/instance": "b1"}, "VirtualOutbound/per-instance"),
        ("backend.b2.mesh", (8080,), "backend", {"kuma.io/instance": "b2"}, "VirtualOutbound/per-instance"),
        ("backend.b3.mesh", (8080,), "backend", {"kuma.io/instance": "b3"}, "VirtualOutbound/per-instance"),
    ]
    assert d.problems == ()


def test_selectors_pick_the_destinations_and_bad_renders_are_reported() -> None:
    by_port = vo("by-port", "{{.svc}}.port.mesh", "{{.p}}", ("svc", "kuma.io/service"), ("p", "port"))
    only_db = vo("only-db", "{{.svc}}.db.mesh", "80", ("svc", "kuma.io/service"), match={"kuma.io/service": "db"})
    d = demand(
        [
            dp("db-1", 5432, **{"kuma.io/service": "db", "port": "5432"}),
            dp("web-1", 8000, **{"kuma.io/service": "web", "port": "99999"}),
        ],
        [by_port, only_db],
    )
    assert [r for r in rows(d) if r[4] != "service"] == [
        ("db.db.mesh", (80,), "db", {}, "VirtualOutbound/only-db"),
        ("db.port.mesh", (5432,), "db", {"port": "5432"}, "VirtualOutbound/by-port"),
    ]
    assert d.problems == (
        "VirtualOutbound/by-port: skipped for web{port=99999}: port renders to 99999, outside 1..65535",
    )


def test_a_hostname_and_port_claimed_twice_keeps_the_first_claim() -> None:
    clash = vo("clash", "{{.svc}}.mesh", "{{.p}}", ("svc", "kuma.io/service"), ("p", "port"))
    d = demand([dp("b1", 8080, **{"kuma.io/service": "backend", "port": "80"})], [clash])
    assert rows(d) == [("backend.mesh", (80, 8080), "backend", {}, "service")]
    assert d.problems == ("VirtualOutbound/clash: backend.mesh:80 is already service's name for backend",)


def test_equal_inputs_give_equal_demands() -> None:
    dps = [dp("b1", 8080, **{"kuma.io/service": "backend"})]
    assert demand(dps) == demand(list(reversed(dps)))
    assert demand(dps).table({"backend.mesh": "240.0.0.1"}) == demand(dps).table({"backend.mesh": "240.0.0.1"})


def _errors(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidInput) as info:
        decode(doc)
    return [(e.path, e.message) for e in info.value.errors]


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        (
            {
                "host": "{{.svc}}.mesh",
                "port": "80",
                "parameters": [{"name": "svc", "tagKey": "kuma.io/service"}, {"name": "v", "tagKey": "version"}],
            },
            [("conf.parameters[1].name", 'parameter "v" is used in neither host nor port')],
        ),
        (
            {"host": "{{.svc}}.mesh", "port": "0", "parameters": [{"name": "svc", "tagKey": "kuma.io/service"}]},
            [("conf.port", "port 0 out of range 1..65535")],
        ),
        (
            {"host": "{{.svc}} .mesh", "port": "80", "parameters": [{"name": "svc", "tagKey": "kuma.io/service"}]},
            [("conf.host", 'must render to a DNS name, got "sample .mesh" with sample values')],
        ),
        (
            {
                "host": "{{if .svc}}x{{end}}.mesh",
                "port": "80",
                "parameters": [{"name": "svc", "tagKey": "kuma.io/service"}],
            },
            [("conf.host", 'only parameter references such as "{{.name}}" are supported in templates')],
        ),
        (
            {"host": "{{.my_svc}}.mesh", "port": "80", "parameters": [{"name": "my_svc", "tagKey": "kuma.io/service"}]},
            [
                (
                    "conf.parameters[0].name",
                    'must consist of letters and digits to be used as a template key, got "my_svc"',
                )
            ],
        ),
        (
            {"host": "{{.v}}.mesh", "port": "80", "parameters": [{"name": "v", "tagKey": "version"}]},
            [("conf.parameters", 'must contain a parameter with tagKey "kuma.io/service"')],
        ),
    ],
    ids=["unused-parameter", "port-0", "host-not-dns", "template-action", "parameter-name", "no-service-parameter"],
)
def test_bad_virtual_outbounds_are_refused_naming_the_field(
    conf: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    doc = {
        "type": "VirtualOutbound",
        "mesh": "default",
        "name": "vo",
        "selectors": [{"match": {"kuma.io/service": "*"}}],
        "conf": conf,
    }
    assert _errors(doc) == expected


def test_rendering_for_one_destination() -> None:
    spec = decode(
        vo("v", "{{.svc}}.{{.v}}.mesh", "{{.p}}", ("svc", "kuma.io/service"), ("v", "version"), ("p", "port"))
    ).spec
    tags = Tags({"kuma.io/service": "backend", "version": "v1", "port": "1800"})
    assert spec.render_host(tags) == ("backend.v1.mesh", "")
    assert spec.render_port(tags) == (1800, "")
    assert spec.render_port(Tags({**tags, "port": "http"})) == (None, 'port renders to "http", which is not a number')
    assert spec.render_host(Tags({"kuma.io/service": "backend"})) == (None, "a parameter's tag is missing")
    assert spec.selects(tags) == 1
    assert (
        decode(vo("x", "{{.s}}.mesh", "80", ("s", "kuma.io/service"), match={"version": "v2"})).spec.selects(tags)
        is None
    )


def test_the_zone_ingress_offers_the_subsets_names_narrow_to() -> None:
    mesh = decode(
        {
            "type": "Mesh",
            "name": "default",
            "mtls": {"enabledBackend": "ca", "backends": [{"name": "ca", "type": "builtin"}]},
        }
    )
    dps = (
        dp("b1", 9000, **{"kuma.io/service": "backend", "kuma.io/instance": "b1"}),
        dp("b2", 9000, **{"kuma.io/service": "backend", "kuma.io/instance": "b2"}),
    )
    names = ServiceNames(
        (
            VirtualName(
                "backend.b1.mesh",
                "240.0.0.2",
                (8080,),
                "backend",
                Tags({"kuma.io/instance": "b1"}),
                "VirtualOutbound/i",
            ),
            VirtualName(
                "backend.b9.mesh",
                "240.0.0.3",
                (8080,),
                "backend",
                Tags({"kuma.io/instance": "b9"}),
                "VirtualOutbound/i",
            ),
            VirtualName("backend.mesh", "240.0.0.1", (80,), "backend"),
        )
    )
    zi = ingress("zone-1")
    view = MeshView(mesh=mesh, dataplanes=dps, zone="zone-1", names=names)
    snis = [r.sni for r in ingress_view("ingress-zone-1", zi, [view]).routes]
    # b9 runs nowhere here: not offered.
    assert snis == ["backend{mesh=default}", "backend{kuma.io/instance=b1,mesh=default}"]
    plain = MeshView(mesh=mesh, dataplanes=dps, zone="zone-1")
    assert [r.sni for r in ingress_view("ingress-zone-1", zi, [plain]).routes] == ["backend{mesh=default}"]


def test_an_alias_never_shadows_another_services_name() -> None:
    d = demand(
        [
            dp("dotted", 80, **{"kuma.io/service": "a.b"}),
            dp("underscored", 8080, **{"kuma.io/service": "a_b"}),
        ]
    )
    by_host = {(n.hostname, n.ports): n.key for n in d.names}
    assert by_host == {("a.b.mesh", (80,)): "a.b.mesh", ("a_b.mesh", (80, 8080)): "a_b.mesh"}
    assert d.problems == ("service: a.b.mesh is already the name of a.b.mesh's VIP",)
