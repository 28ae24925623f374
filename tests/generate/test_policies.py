"""Policy matching and merging (atoll.topology.matching, .settings): selection, order, merge patch, to/from/rules."""

from __future__ import annotations

from typing import Any

import pytest

from atoll.resources import decode_all
from atoll.topology import Conf, MeshView, PolicySettings, merge_patch, proxy_view, sort_policies
from atoll.topology.settings.conf import freeze, thaw
from atoll.topology.settings.timeout import HttpTimeouts, TimeoutSettings

MESH = """
type: Mesh
name: default
---
type: Dataplane
mesh: default
name: web-1
labels: {team: front}
networking:
  address: 10.0.0.1
  inbound:
    - port: 8080
      name: main
      tags: {kuma.io/service: web, kuma.io/protocol: http, version: v1}
    - port: 9090
      tags: {kuma.io/service: web-admin, kuma.io/protocol: http}
  outbound:
    - port: 10001
      tags: {kuma.io/service: backend}
    - port: 10002
      tags: {kuma.io/service: db}
---
type: Dataplane
mesh: default
name: backend-1
networking:
  address: 10.0.0.2
  inbound:
    - port: 8080
      tags: {kuma.io/service: backend}
"""


def _timeout(name: str, top: str, to: str = "", from_: str = "", rules: str = "", labels: str = "") -> str:
    doc = f"---\ntype: MeshTimeout\nmesh: default\nname: {name}\n{labels}spec:\n  targetRef: {top}\n"
    if to:
        doc += f"  to:\n{to}"
    if from_:
        doc += f"  from:\n{from_}"
    if rules:
        doc += f"  rules:\n{rules}"
    return doc


def _to(ref: str, default: str) -> str:
    return f"    - targetRef: {ref}\n      default: {default}\n"


def _view(*policies: str, proxy: str = "web-1") -> Any:
    resources = decode_all(MESH + "".join(policies))
    mv = MeshView(
        mesh=resources[0],
        dataplanes=tuple(r for r in resources if r.type == "Dataplane"),
        zone="zone-1",
        policies=tuple(r for r in resources if r.type.startswith("Mesh") and r.type != "Mesh"),
    )
    return proxy_view(mv, proxy)


def _out(view: Any, service: str) -> TimeoutSettings | None:
    ob = next(o for o in view.outbounds if o.service == service)
    timeout: TimeoutSettings | None = ob.policies.timeout
    return timeout


def _t(connection: float | None = None, idle: float | None = None, **http: float) -> TimeoutSettings:
    """The MeshTimeout settings of a merged ``default`` with these durations (in seconds)."""
    return TimeoutSettings(connection_timeout=connection, idle_timeout=idle, http=HttpTimeouts(**http))


# -- merge patch (RFC 7396) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc7396_examples(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


def test_merge_patch_leaves_inputs_alone_and_accepts_frozen() -> None:
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": 2}})
    assert target == {"a": {"b": 1}}
    assert merge_patch(Conf({"a": {"b": 1}, "l": [1]}), {"a": {"c": 2}}) == {"a": {"b": 1, "c": 2}, "l": [1]}


def test_conf_is_frozen_hashable_and_round_trips() -> None:
    c = Conf({"b": [1, {"x": 2}], "a": {"y": None}})
    assert list(c) == ["a", "b"]
    assert c["b"] == (1, Conf({"x": 2}))
    assert hash(c) == hash(freeze({"a": {"y": None}, "b": [1, {"x": 2}]}))
    assert c == {"a": {"y": None}, "b": (1, Conf({"x": 2}))}
    assert thaw(c) == c.to_dict() == {"a": {"y": None}, "b": [1, {"x": 2}]}


# -- order ----------------------------------------------------------------------------------------


def test_sort_by_kind_then_origin_then_inverted_name() -> None:
    docs = decode_all(
        _timeout("a-dp", "{kind: Dataplane, name: web-1}", to=_to("{kind: Mesh}", "{idleTimeout: 1s}"))
        + _timeout("b-svc", "{kind: MeshService, name: web}", to=_to("{kind: Mesh}", "{idleTimeout: 1s}"))
        + _timeout("a-mesh", "{kind: Mesh}", to=_to("{kind: Mesh}", "{idleTimeout: 1s}"))
        + _timeout("b-mesh", "{kind: Mesh}", to=_to("{kind: Mesh}", "{idleTimeout: 1s}"))
        + _timeout(
            "c-global",
            "{kind: Mesh}",
            to=_to("{kind: Mesh}", "{idleTimeout: 1s}"),
            labels="labels: {kuma.io/origin: global}\n",
        )
        + _timeout("a-subset", "{kind: MeshSubset, tags: {version: v1}}", to=_to("{kind: Mesh}", "{idleTimeout: 1s}"))
        + _timeout(
            "z-sss",
            "{kind: MeshServiceSubset, name: web, tags: {version: v1}}",
            to=_to("{kind: Mesh}", "{idleTimeout: 1s}"),
        )
    )
    assert [p.name for p in sort_policies(docs)] == [
        "c-global",  # Mesh, from global: least specific
        "b-mesh",  # Mesh, inverted name order: "a-mesh" comes last and wins
        "a-mesh",
        "a-subset",
        "b-svc",
        "z-sss",
        "a-dp",
    ]


def test_more_specific_top_level_wins_and_name_breaks_ties() -> None:
    view = _view(
        _timeout("mesh-b", "{kind: Mesh}", to=_to("{kind: Mesh}", "{idleTimeout: 1s, connectionTimeout: 1s}")),
        _timeout("mesh-a", "{kind: Mesh}", to=_to("{kind: Mesh}", "{idleTimeout: 2s}")),
        _timeout("svc", "{kind: MeshService, name: web}", to=_to("{kind: Mesh}", "{http: {requestTimeout: 3s}}")),
        _timeout("dp", "{kind: Dataplane, name: web-1}", to=_to("{kind: MeshService, name: db}", "{idleTimeout: 9s}")),
    )
    assert _out(view, "backend") == _t(connection=1, idle=2, request_timeout=3)
    assert _out(view, "db") == _t(connection=1, idle=9, request_timeout=3)
    assert [n for _, n in view.policies] == ["mesh-b", "mesh-a", "svc", "dp"]


def test_to_items_sorted_by_their_own_kind_within_merge() -> None:
    # One Mesh-level policy: its MeshService item beats the later Mesh item for the same outbound.
    to = _to("{kind: MeshService, name: backend}", "{idleTimeout: 5s}") + _to("{kind: Mesh}", "{idleTimeout: 1s}")
    view = _view(_timeout("one", "{kind: Mesh}", to=to))
    assert _out(view, "backend") == _t(idle=5)
    assert _out(view, "db") == _t(idle=1)


def test_merge_is_field_by_field_and_arrays_replace() -> None:
    view = _view(
        _timeout("b", "{kind: Mesh}", to=_to("{kind: Mesh}", "{http: {requestTimeout: 1s, streamIdleTimeout: 2s}}")),
        _timeout("a", "{kind: Mesh}", to=_to("{kind: Mesh}", "{http: {requestTimeout: 5s}}")),
    )
    assert _out(view, "db") == _t(request_timeout=5, stream_idle_timeout=2)


# -- selection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top", "selected"),
    [
        ("{kind: Mesh}", True),
        ("{kind: Mesh, proxyTypes: [Sidecar]}", True),
        ("{kind: Mesh, proxyTypes: [Gateway]}", False),
        ("{kind: MeshSubset, tags: {version: v1}}", True),
        ("{kind: MeshSubset, tags: {version: v2}}", False),
        ("{kind: MeshSubset}", True),
        ("{kind: MeshService, name: web-admin}", True),
        ("{kind: MeshService, name: backend}", False),
        ("{kind: MeshServiceSubset, name: web, tags: {version: v1}}", True),
        ("{kind: MeshServiceSubset, name: web, tags: {version: v2}}", False),
        ("{kind: Dataplane, name: web-1}", True),
        ("{kind: Dataplane, name: backend-1}", False),
        ("{kind: Dataplane, labels: {team: front}}", True),
        ("{kind: Dataplane, labels: {team: back}}", False),
    ],
)
def test_top_level_selection(top: str, selected: bool) -> None:
    view = _view(_timeout("p", top, to=_to("{kind: Mesh}", "{idleTimeout: 7s}")))
    assert (_out(view, "db") == _t(idle=7)) is selected
    assert bool(view.policies) is selected


def test_inbound_policies_apply_to_the_selected_inbounds_only() -> None:
    from_ = _to("{kind: Mesh}", "{idleTimeout: 1s}")
    view = _view(
        _timeout("all", "{kind: Mesh}", from_=from_),
        _timeout("v1", "{kind: MeshSubset, tags: {version: v1}}", rules="    - default: {idleTimeout: 2s}\n"),
        _timeout(
            "admin",
            "{kind: Dataplane, name: web-1, sectionName: '9090'}",
            rules="    - default: {connectionTimeout: 3s}\n",
        ),
    )
    by_port = {ib.port: ib.policies.timeout for ib in view.inbounds}
    assert by_port == {8080: _t(idle=2), 9090: _t(idle=1, connection=3)}
    # outbounds are not configured by from/rules
    assert _out(view, "db") is None


def test_section_name_matches_inbound_name() -> None:
    view = _view(_timeout("main", "{kind: Dataplane, sectionName: main}", rules="    - default: {idleTimeout: 4s}\n"))
    assert {ib.port: ib.policies for ib in view.inbounds} == {
        8080: PolicySettings(timeout=_t(idle=4)),
        9090: PolicySettings(),
    }


def test_views_stay_hashable_and_equal() -> None:
    p = _timeout("p", "{kind: Mesh}", to=_to("{kind: Mesh}", "{idleTimeout: 7s}"))
    assert _view(p) == _view(p)
    assert hash(_view(p)) == hash(_view(p))
    assert _view(p) != _view(_timeout("p", "{kind: Mesh}", to=_to("{kind: Mesh}", "{idleTimeout: 8s}")))


# -- MeshTrafficPermission ------------------------------------------------------------------------


def _mtp(name: str, top: str, *froms: tuple[str, str]) -> str:
    items = "".join(f"    - targetRef: {ref}\n      default: {{action: {action}}}\n" for ref, action in froms)
    return f"---\ntype: MeshTrafficPermission\nmesh: default\nname: {name}\nspec:\n  targetRef: {top}\n  from:\n{items}"


def test_permissions_ordered_by_source_specificity_then_policy_order() -> None:
    view = _view(
        _mtp("svc", "{kind: MeshService, name: backend}", ("{kind: MeshService, name: web}", "Deny")),
        _mtp(
            "mesh",
            "{kind: Mesh}",
            ("{kind: MeshSubset, tags: {kuma.io/zone: zone-2}}", "AllowWithShadowDeny"),
            ("{kind: Mesh}", "Allow"),
        ),
        proxy="backend-1",
    )
    (ib,) = view.inbounds
    assert [(dict(p.source), p.action, p.policy) for p in ib.permissions] == [
        ({}, "Allow", "mesh"),
        ({"kuma.io/zone": "zone-2"}, "AllowWithShadowDeny", "mesh"),
        ({"kuma.io/service": "web"}, "Deny", "svc"),
    ]
    assert ib.policies == PolicySettings()  # permissions are not merged into settings


def test_traffic_permission_rules_are_appended_across_policies() -> None:
    def rules(name: str, key: str, value: str) -> str:
        return (
            f"---\ntype: MeshTrafficPermission\nmesh: default\nname: {name}\nspec:\n  targetRef: {{kind: Mesh}}\n"
            f"  rules:\n    - default:\n        {key}:\n          - spiffeID: {{type: Exact, value: '{value}'}}\n"
        )

    view = _view(
        rules("a", "allow", "spiffe://default/web"),
        rules("b", "deny", "spiffe://default/db"),
        rules("c", "allow", "spiffe://default/api"),
        proxy="backend-1",
    )
    (ib,) = view.inbounds
    assert ib.identity_rules.allow == (("Exact", "spiffe://default/api"), ("Exact", "spiffe://default/web"))
    assert ib.identity_rules.deny == (("Exact", "spiffe://default/db"),)
    assert ib.permissions == ()
