"""``NodeId``: the one parse and format of a proxy's node id, byte-identical to the wire form."""

from __future__ import annotations

import pytest

from atoll.resources.proxy_id import PROXY_TYPE_NAMES, MalformedNodeId, NodeId, ProxyType, dataplane_node_id


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("default.web-1", NodeId(ProxyType.DATAPLANE, "web-1", "default")),
        ("default.web.v2", NodeId(ProxyType.DATAPLANE, "web.v2", "default")),  # the first dot splits
        ("ingress:zi-1", NodeId(ProxyType.INGRESS, "zi-1")),
        ("egress:ze-1", NodeId(ProxyType.EGRESS, "ze-1")),
        ("egress:zone-1.ze", NodeId(ProxyType.EGRESS, "zone-1.ze")),  # a dot in a zone proxy's name
    ],
)
def test_parse_and_format_round_trip(text: str, node: NodeId) -> None:
    assert NodeId.parse(text) == node
    assert str(node) == text
    assert NodeId.parse(str(node)) == node


def test_constructors_give_the_wire_forms() -> None:
    assert str(NodeId.dataplane("default", "web")) == "default.web" == dataplane_node_id("default", "web")
    assert str(NodeId.ingress("zi")) == "ingress:zi"
    assert str(NodeId.egress("ze")) == "egress:ze"
    assert NodeId.of("Dataplane", "m", "web") == NodeId.dataplane("m", "web")
    assert NodeId.of("ZoneIngress", None, "zi") == NodeId.ingress("zi")
    assert NodeId.of("ZoneEgress", None, "ze") == NodeId.egress("ze")
    assert NodeId.ingress("zi").is_zone_proxy and not NodeId.dataplane("m", "w").is_zone_proxy


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("web", "<mesh>.<name>"),
        ("", "<mesh>.<name>"),
        (".web", "<mesh>.<name>"),
        ("default.", "<mesh>.<name>"),
        ("ingress:", 'no name after "ingress:"'),
        ("egress:", 'no name after "egress:"'),
    ],
)
def test_malformed_ids_are_refused_saying_what_was_expected(text: str, says: str) -> None:
    with pytest.raises(MalformedNodeId) as e:
        NodeId.parse(text)
    assert says in str(e.value)
    assert isinstance(e.value, ValueError)


def test_a_node_id_is_consistent_with_its_type() -> None:
    with pytest.raises(MalformedNodeId, match="needs a mesh"):
        NodeId(ProxyType.DATAPLANE, "web")
    with pytest.raises(MalformedNodeId, match="belongs to no mesh"):
        NodeId(ProxyType.INGRESS, "zi", "default")
    with pytest.raises(MalformedNodeId, match="needs a name"):
        NodeId.egress("")


def test_proxy_types_name_their_resources() -> None:
    assert PROXY_TYPE_NAMES == ("dataplane", "ingress", "egress")
    assert [t.resource_type for t in ProxyType] == ["Dataplane", "ZoneIngress", "ZoneEgress"]
    assert all(ProxyType.of_resource(t.resource_type) is t for t in ProxyType)
    with pytest.raises(ValueError, match="does not describe a proxy"):
        ProxyType.of_resource("Mesh")
