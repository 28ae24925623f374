"""The policy-matching memo (``atoll.topology.matching.match_policies``): shared per proxy shape, never
across proxies a policy tells apart, and carried from one mesh view to the next while policies stay."""

from __future__ import annotations

from typing import Any

from atoll.resources import decode_all
from atoll.topology import MeshView, proxy_view
from atoll.topology.matching import ProxyRefs, match_policies


def _dataplane(name: str, labels: str = "") -> str:
    return f"""
---
type: Dataplane
mesh: default
name: {name}
{labels}networking:
  address: 10.0.0.1
  inbound:
    - port: 8080
      tags: {{kuma.io/service: web, kuma.io/protocol: http}}
  outbound:
    - port: 10001
      tags: {{kuma.io/service: backend}}
"""


def _timeout(name: str, top: str, seconds: int) -> str:
    return f"""
---
type: MeshTimeout
mesh: default
name: {name}
spec:
  targetRef: {top}
  to:
    - targetRef: {{kind: Mesh}}
      default: {{connectionTimeout: {seconds}s}}
"""


def _resources(*policies: str) -> list[Any]:
    docs = "type: Mesh\nname: default\n" + _dataplane("web-1", "labels: {team: front}\n") + _dataplane("web-2")
    return decode_all(docs + "".join(policies))


def _view(resources: list[Any], previous: MeshView | None = None) -> MeshView:
    return MeshView(
        mesh=resources[0],
        dataplanes=tuple(r for r in resources if r.type == "Dataplane"),
        zone="zone-1",
        policies=tuple(r for r in resources if r.type == "MeshTimeout"),
        previous=previous,
    )


def _connect_timeout(mv: MeshView, proxy: str) -> float | None:
    timeout = proxy_view(mv, proxy).outbounds[0].policies.timeout
    return None if timeout is None else timeout.connection_timeout


def test_proxies_of_one_shape_share_one_result() -> None:
    mv = _view(_resources(_timeout("all", "{kind: Mesh}", 3)))
    refs = [ProxyRefs.of(mv.index.dataplanes[name]) for name in ("web-1", "web-2")]
    results = [
        match_policies(mv.index.policies, dataplane=n, labels={}, inbounds=r.inbounds, outbounds=r.outbounds)
        for n, r in zip(("web-1", "web-2"), refs, strict=True)
    ]
    assert results[0] is results[1]
    assert _connect_timeout(mv, "web-1") == _connect_timeout(mv, "web-2") == 3


def test_a_policy_selecting_a_dataplane_by_name_is_not_shared_with_its_twin() -> None:
    mv = _view(_resources(_timeout("all", "{kind: Mesh}", 3), _timeout("one", "{kind: Dataplane, name: web-1}", 7)))
    assert _connect_timeout(mv, "web-2") == 3  # matched first: its shape is memoized
    assert _connect_timeout(mv, "web-1") == 7
    assert _connect_timeout(mv, "web-2") == 3


def test_a_policy_selecting_dataplanes_by_label_is_not_shared_with_an_unlabelled_twin() -> None:
    mv = _view(
        _resources(_timeout("all", "{kind: Mesh}", 3), _timeout("team", "{kind: Dataplane, labels: {team: front}}", 9))
    )
    assert _connect_timeout(mv, "web-2") == 3
    assert _connect_timeout(mv, "web-1") == 9


def test_a_new_view_keeps_the_ordered_policies_while_the_policies_are_the_same_objects() -> None:
    resources = _resources(_timeout("all", "{kind: Mesh}", 3))
    first = _view(resources)
    same = _view(resources, previous=first)
    assert same.index.policies is first.index.policies
    changed = _view(_resources(_timeout("all", "{kind: Mesh}", 5)), previous=same)
    assert changed.index.policies is not same.index.policies
    assert _connect_timeout(changed, "web-1") == 5
    assert _connect_timeout(same, "web-1") == 3
