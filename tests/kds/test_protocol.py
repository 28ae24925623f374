"""Sans-I/O tests of the KDS machines and the wire format: no sockets, no store."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from atoll.errors import PeerProtocolError
from atoll.kds import kds_pb2
from atoll.kds.names import DISPLAY_NAME, ORIGIN, ZONE, from_global, from_zone, hashed_name
from atoll.kds.protocol import DELTA, FULL, Receiver, Reply, Sender
from atoll.kds.wire import KDS_RESOURCE_URL, WireError, from_wire, to_wire
from atoll.resources import Resource, decode
from tests.kds.data import dataplane, mesh, mtp


def test_wire_round_trip_keeps_every_field_and_integers() -> None:
    for r in (mesh("default", team="a"), dataplane("web-1", port=8080), mtp("allow", "default")):
        item = to_wire(r)
        assert item.name == (f"{r.mesh}/{r.name}" if r.mesh else r.name)
        back = from_wire(r.type, item)
        assert back.spec == r.spec and dict(back.meta.labels) == dict(r.meta.labels)
        assert (back.name, back.mesh, back.type) == (r.name, r.mesh, r.type)
    assert from_wire("Dataplane", to_wire(dataplane("d", port=8080))).spec.networking.inbound[0].port == 8080


def test_content_version_follows_content_only() -> None:
    a, b = to_wire(mesh("m")), to_wire(mesh("m").with_meta(version=7))
    assert a.version == b.version
    assert to_wire(mesh("m", x="1")).version != a.version


def _item(type: str, name: str, spec: bytes, mesh: str = "") -> discovery_pb2.Resource:
    payload = kds_pb2.KdsResource(meta=kds_pb2.KdsResourceMeta(type=type, name=name, mesh=mesh), spec=spec)
    packed = any_pb2.Any()
    packed.Pack(payload)
    return discovery_pb2.Resource(name=f"{mesh}/{name}" if mesh else name, version="v", resource=packed)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (_item("Mesh", "m", b"{not json"), "spec is not JSON"),
        (_item("Mesh", "m", b"[1]"), "spec must be a JSON object"),
        (_item("Mesh", "m", b'{"mtls": 5}'), "mtls"),
        (_item("Dataplane", "d", b"{}"), "resource type 'Dataplane' in a response for Mesh"),
        (_item("Mesh", "Bad_Name", b"{}"), "name"),
        (discovery_pb2.Resource(name="x", resource=any_pb2.Any(type_url="t/other", value=b"zz")), "payload is t/other"),
        (
            discovery_pb2.Resource(name="x", resource=any_pb2.Any(type_url=KDS_RESOURCE_URL, value=b"\xff\xff")),
            "decode",
        ),
    ],
)
def test_bad_resources_are_wire_errors_naming_the_problem(item: discovery_pb2.Resource, message: str) -> None:
    with pytest.raises(WireError, match=message.replace("[", r"\[").replace("(", r"\(")):
        from_wire("Mesh", item)


def test_names_and_labels_of_synced_copies() -> None:
    h = hashed_name("web-1", "zone-1", "default")
    assert h.startswith("web-1-") and len(h) == len("web-1-") + 8
    assert h == hashed_name("web-1", "zone-1", "default") != hashed_name("web-1", "zone-2", "default")
    copy = from_zone(dataplane("web-1").with_meta(labels={ORIGIN: "global", ZONE: "liar"}), "zone-1")
    assert copy.name == h
    assert dict(copy.meta.labels) == {ORIGIN: "zone", ZONE: "zone-1", DISPLAY_NAME: "web-1"}
    assert from_global(mesh("m")).meta.labels == {ORIGIN: "global"}
    assert len(hashed_name("a" * 253, "z", None)) <= 253


def _subscribe(sender: Sender, type: str) -> None:
    seen = sender.receive(discovery_pb2.DeltaDiscoveryRequest(type_url=type))
    assert seen.reply is Reply.SUBSCRIBED


def test_sender_full_set_then_deltas_then_nothing() -> None:
    s = Sender(["Mesh", "Dataplane"])
    s.set_desired("Mesh", [mesh("a"), mesh("b")])
    assert s.responses() == []  # nobody subscribed yet
    _subscribe(s, "Mesh")
    _subscribe(s, "Dataplane")
    out = s.responses()
    assert [(r.type_url, r.system_version_info, [i.name for i in r.resources]) for r in out] == [
        ("Mesh", FULL, ["a", "b"])
    ]  # Dataplane: desired set not known yet, so no (empty) full set is claimed
    s.set_desired("Dataplane", [])
    (empty,) = s.responses()
    assert (empty.type_url, empty.system_version_info, len(empty.resources)) == ("Dataplane", FULL, 0)
    assert s.responses() == []
    s.set_desired("Mesh", [mesh("a", x="1"), mesh("c")])
    (delta,) = s.responses()
    assert delta.system_version_info == DELTA
    assert [i.name for i in delta.resources] == ["a", "c"] and list(delta.removed_resources) == ["b"]
    assert s.responses() == []
    assert s.in_flight == 3


def test_sender_acks_nacks_and_resends_refused_with_the_next_change() -> None:
    s = Sender(["Mesh"])
    s.set_desired("Mesh", [mesh("a"), mesh("b")])
    _subscribe(s, "Mesh")
    (full,) = s.responses()
    nack = discovery_pb2.DeltaDiscoveryRequest(type_url="Mesh", response_nonce=full.nonce)
    nack.error_detail.message = "b: Mesh b: cannot take it"
    seen = s.receive(nack)
    assert seen.reply is Reply.NACK and seen.error == "b: Mesh b: cannot take it"
    assert s.counts("Mesh") == (0, 1) and s.last_error("Mesh") == "b: Mesh b: cannot take it"
    assert s.responses() == []  # no hot loop: nothing resent until something changes
    s.set_desired("Mesh", [mesh("a"), mesh("b"), mesh("c")])
    (delta,) = s.responses()
    assert [i.name for i in delta.resources] == ["b", "c"]  # the refused one rides along
    seen = s.receive(discovery_pb2.DeltaDiscoveryRequest(type_url="Mesh", response_nonce=delta.nonce))
    assert seen.reply is Reply.ACK and s.counts("Mesh") == (1, 1) and s.last_error("Mesh") is None
    assert s.in_flight == 0


def test_resubscribing_starts_over_with_a_full_set() -> None:
    s = Sender(["Mesh"])
    s.set_desired("Mesh", [mesh("a")])
    _subscribe(s, "Mesh")
    s.responses()
    _subscribe(s, "Mesh")
    (again,) = s.responses()
    assert again.system_version_info == FULL and [i.name for i in again.resources] == ["a"]


def test_sender_refuses_unknown_types() -> None:
    s = Sender(["Mesh"])
    with pytest.raises(PeerProtocolError, match="unknown type 'Nope'"):
        s.receive(discovery_pb2.DeltaDiscoveryRequest(type_url="Nope"))


def _response(type: str, kind: str, items: list[Resource[Any]], removed: list[str] = ()) -> Any:  # type: ignore[assignment]
    return discovery_pb2.DeltaDiscoveryResponse(
        type_url=type,
        system_version_info=kind,
        nonce="n1",
        resources=[to_wire(r) for r in items],
        removed_resources=list(removed),
    )


def test_receiver_decodes_batches_and_answers() -> None:
    rx = Receiver(["Mesh", "Dataplane"])
    subs = rx.subscriptions()
    assert [(r.type_url, list(r.resource_names_subscribe), r.response_nonce) for r in subs] == [
        ("Mesh", ["*"], ""),
        ("Dataplane", ["*"], ""),
    ]
    batch = rx.receive(_response("Dataplane", FULL, [dataplane("web-1")]))
    assert batch.full and [r.name for r in batch.resources] == ["web-1"] and batch.errors == []
    batch = rx.receive(_response("Dataplane", DELTA, [], ["default/web-1"]))
    assert not batch.full and batch.removed == [("web-1", "default")]
    ack = rx.ack(batch)
    assert ack.response_nonce == "n1" and not ack.HasField("error_detail")
    nack = rx.nack(batch, "broken")
    assert nack.error_detail.message == "broken" and nack.error_detail.code != 0


def test_receiver_keeps_good_resources_and_reports_bad_ones() -> None:
    rx = Receiver(["Mesh"])
    rx.subscriptions()
    resp = _response("Mesh", FULL, [mesh("good")])
    resp.resources.append(_item("Mesh", "bad", b'{"mtls": 5}'))
    batch = rx.receive(resp)
    assert [r.name for r in batch.resources] == ["good"]
    assert batch.refused == frozenset({"bad"}) and batch.errors[0].startswith("bad: Mesh bad:")


def test_receiver_refuses_nonsense() -> None:
    rx = Receiver(["Mesh"])
    rx.subscriptions()
    with pytest.raises(PeerProtocolError, match="not subscribed"):
        rx.receive(_response("Dataplane", FULL, []))
    with pytest.raises(PeerProtocolError, match="before the full set"):
        rx.receive(_response("Mesh", DELTA, []))
    with pytest.raises(PeerProtocolError, match="without a nonce"):
        rx.receive(discovery_pb2.DeltaDiscoveryResponse(type_url="Mesh", system_version_info=FULL))


def test_decode_helper_is_the_codec() -> None:
    assert decode({"type": "Mesh", "name": "x"}).name == "x"


def test_a_peer_that_never_answers_does_not_grow_the_sender_without_bound() -> None:
    from atoll.kds.protocol import MAX_IN_FLIGHT

    s = Sender(["Mesh"])
    _subscribe(s, "Mesh")
    for i in range(MAX_IN_FLIGHT + 10):
        s.set_desired("Mesh", [mesh("m", v=str(i))])
        assert len(s.responses()) == 1
    assert s.in_flight == MAX_IN_FLIGHT


def test_sender_patches_part_of_the_desired_set() -> None:
    s = Sender(["Mesh"])
    with pytest.raises(ValueError, match="before set_desired"):
        s.patch_desired("Mesh", [mesh("a")])
    s.set_desired("Mesh", [mesh("a"), mesh("b")])
    _subscribe(s, "Mesh")
    s.responses()
    s.patch_desired("Mesh", [mesh("b", x="1"), mesh("c")], remove=["a"])
    (delta,) = s.responses()
    assert [i.name for i in delta.resources] == ["b", "c"] and list(delta.removed_resources) == ["a"]
    s.patch_desired("Mesh", [mesh("c")], remove=["nothing-by-that-name"])  # no change: nothing sent
    assert s.responses() == []
