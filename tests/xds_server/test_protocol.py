"""The sans-I/O state machines, with no sockets: SotW and delta rules one by one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from atoll.xds.server import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    SECRET,
    DeltaStream,
    PeerProtocolError,
    Snapshot,
    SotwStream,
)
from atoll.xds.server.protocol import node_of_first_request

from .xds_resources import cla, cluster, listener, route


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def snap(
    eps: Mapping[str, int] | None = None, *, timeout_s: int = 1, routes_to: str = "c1", secret: bool = False
) -> Snapshot:
    eps = {"c1": 8080, "c2": 8081} if eps is None else eps
    return Snapshot.build(
        listeners=[listener("l1", 10001, "r1")],
        routes=[route("r1", routes_to)],
        clusters=[cluster(n, timeout_s=timeout_s) for n in eps],
        endpoints=[cla(n, p) for n, p in eps.items()],
        secrets=[secret_pb2.Secret(name="s1", tls_certificate=common_pb2.TlsCertificate())] if secret else [],
    )


def sreq(
    type_url: str, names: Iterable[str] = (), *, nonce: str = "", version: str = "", error: str | None = None
) -> discovery_pb2.DiscoveryRequest:
    r = discovery_pb2.DiscoveryRequest(
        type_url=type_url, resource_names=list(names), response_nonce=nonce, version_info=version
    )
    if error is not None:
        r.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return r


def dreq(
    type_url: str,
    sub: Iterable[str] = (),
    unsub: Iterable[str] = (),
    *,
    nonce: str = "",
    initial: Mapping[str, str] | None = None,
    error: str | None = None,
) -> discovery_pb2.DeltaDiscoveryRequest:
    r = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url,
        resource_names_subscribe=list(sub),
        resource_names_unsubscribe=list(unsub),
        response_nonce=nonce,
        initial_resource_versions=dict(initial or {}),
    )
    if error is not None:
        r.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return r


def sotw(s: Snapshot | None = None) -> SotwStream:
    m = SotwStream("default.web-1", 7, clock=FakeClock())
    if s is not None:
        assert m.set_snapshot(s) == []  # nothing requested yet
    return m


def delta(s: Snapshot | None = None) -> DeltaStream:
    m = DeltaStream("default.web-1", 7, clock=FakeClock())
    if s is not None:
        assert m.set_snapshot(s) == []
    return m


# --- shared -----------------------------------------------------------------------------------------


def test_node_of_first_request() -> None:
    assert node_of_first_request(discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id="default.a"))).id == "default.a"
    with pytest.raises(PeerProtocolError, match=r"node\.id"):
        node_of_first_request(discovery_pb2.DiscoveryRequest(type_url=CLUSTER))
    with pytest.raises(PeerProtocolError, match=r"node\.id"):
        node_of_first_request(discovery_pb2.DeltaDiscoveryRequest(node=base_pb2.Node(cluster="web")))


@pytest.mark.parametrize("machine", [sotw, delta])
def test_bad_type_urls_are_the_peers_error(machine: type) -> None:
    m = machine(snap())
    make = sreq if isinstance(m, SotwStream) else dreq
    with pytest.raises(PeerProtocolError, match="no type_url"):
        m.receive(make(""))
    with pytest.raises(PeerProtocolError, match=r"unknown or unsupported type_url 'type\.googleapis\.com/nope'"):
        m.receive(make("type.googleapis.com/nope"))


# --- SotW -------------------------------------------------------------------------------------------


def test_sotw_wildcard_cds_and_named_eds() -> None:
    s = snap()
    m = sotw(s)
    [cds] = m.receive(sreq(CLUSTER))
    assert (cds.type_url, cds.version_info, cds.nonce) == (CLUSTER, s.version(CLUSTER), "1")
    assert sorted(cds.names) == ["c1", "c2"]
    msg = cds.to_message()
    assert msg.nonce == "1" and msg.version_info == s.version(CLUSTER) and len(msg.resources) == 2
    [eds] = m.receive(sreq(ENDPOINT, ["c2", "nope"]))
    assert eds.names == ("c2",) and eds.nonce == "2"
    [rds] = m.receive(sreq(ROUTE))  # empty names is not a wildcard for RDS
    assert rds.resources == ()


def test_sotw_request_before_snapshot_is_answered_when_it_arrives() -> None:
    m = sotw()
    assert m.receive(sreq(CLUSTER)) == []
    assert m.receive(sreq(LISTENER)) == []
    out = m.set_snapshot(snap())
    assert [r.type_url for r in out] == [CLUSTER, LISTENER]


def test_sotw_ack_is_recorded_and_not_answered() -> None:
    s = snap()
    m = sotw(s)
    [cds] = m.receive(sreq(CLUSTER))
    st = m.status().types[CLUSTER]
    assert st.pending and not st.in_sync and st.last_sent_version == s.version(CLUSTER) and st.sent_count == 1
    assert m.receive(sreq(CLUSTER, nonce=cds.nonce, version=cds.version_info)) == []
    st = m.status().types[CLUSTER]
    assert st.in_sync and st.ack_count == 1 and st.last_acked_version == s.version(CLUSTER)
    assert st.last_acked_at is not None and st.last_sent_at is not None and st.last_acked_at > st.last_sent_at
    assert m.status().in_sync and m.status().mode == "sotw" and m.status().stream_id == 7


def _sotw_synced(s: Snapshot) -> SotwStream:
    m = sotw(s)
    for t, names in ((CLUSTER, ()), (ENDPOINT, ("c1", "c2")), (LISTENER, ()), (ROUTE, ("r1",))):
        [r] = m.receive(sreq(t, names))
        assert m.receive(sreq(t, names, nonce=r.nonce, version=r.version_info)) == []
    return m


def test_sotw_only_changed_types_are_pushed_in_order() -> None:
    m = _sotw_synced(snap())
    assert m.set_snapshot(snap()) == []  # equal content, new object
    [eds] = m.set_snapshot(snap({"c1": 9000, "c2": 8081}))
    assert eds.type_url == ENDPOINT and sorted(eds.names) == ["c1", "c2"]
    out = m.set_snapshot(snap({"c1": 1, "c2": 2}, timeout_s=3, routes_to="c2"))
    assert [r.type_url for r in out] == [CLUSTER, ENDPOINT, ROUTE]
    nonces = [int(r.nonce) for r in out]
    assert nonces == sorted(nonces) and len(set(nonces)) == 3


def test_sotw_push_order_with_secrets() -> None:
    m = sotw()
    for t in (ROUTE, LISTENER, ENDPOINT, CLUSTER, SECRET):
        m.receive(sreq(t, ["s1"] if t == SECRET else ["r1"] if t == ROUTE else ["c1"] if t == ENDPOINT else []))
    out = m.set_snapshot(snap(secret=True))
    assert [r.type_url for r in out] == [SECRET, CLUSTER, ENDPOINT, LISTENER, ROUTE]


def test_sotw_named_subscription_ignores_changes_to_other_names() -> None:
    m = sotw(snap())
    [eds] = m.receive(sreq(ENDPOINT, ["c1"]))
    m.receive(sreq(ENDPOINT, ["c1"], nonce=eds.nonce))
    assert m.set_snapshot(snap({"c1": 8080, "c2": 9999})) == []
    [eds2] = m.set_snapshot(snap({"c1": 7777, "c2": 9999}))
    assert eds2.names == ("c1",)


def test_sotw_stale_nonce_is_dropped() -> None:
    m = _sotw_synced(snap())
    old_nonce = m.status().types[ENDPOINT].last_sent_nonce
    [eds_new] = m.set_snapshot(snap({"c1": 9000, "c2": 8081}))
    assert old_nonce is not None and old_nonce != eds_new.nonce
    # A request carrying the nonce of the superseded response (pitfall 2): dropped whole.
    assert m.receive(sreq(ENDPOINT, ["c1", "c2", "c3"], nonce=old_nonce)) == []
    st = m.status().types[ENDPOINT]
    assert st.stale_dropped == 1 and st.pending and st.subscriptions == 2
    assert m.receive(sreq(ENDPOINT, ["c1", "c2"], nonce=eds_new.nonce)) == []
    assert m.status().types[ENDPOINT].in_sync


def test_sotw_subscription_change_in_ack_is_answered() -> None:
    m = sotw(snap())
    [eds] = m.receive(sreq(ENDPOINT, ["c1"]))
    [eds2] = m.receive(sreq(ENDPOINT, ["c1", "c2"], nonce=eds.nonce))
    assert eds2.names == ("c1", "c2")
    assert m.status().types[ENDPOINT].ack_count == 1


def test_sotw_nack_is_recorded_and_not_resent_until_a_newer_snapshot() -> None:
    good = snap()
    m = _sotw_synced(good)
    bad = snap(timeout_s=5)
    [cds] = m.set_snapshot(bad)
    assert m.receive(sreq(CLUSTER, nonce=cds.nonce, version=good.version(CLUSTER), error="Duration out-of-range")) == []
    st = m.status().types[CLUSTER]
    assert st.rejected and st.nack_count == 1 and st.last_nack_error == "Duration out-of-range"
    assert st.last_nack_version == bad.version(CLUSTER) and st.last_acked_version == good.version(CLUSTER)
    assert m.status().nacked and not m.status().in_sync
    # The peer asks again with the same nonce, and the same snapshot is set again: not re-sent.
    assert m.receive(sreq(CLUSTER, nonce=cds.nonce, version=good.version(CLUSTER))) == []
    assert m.set_snapshot(bad) == []
    assert m.set_snapshot(snap(timeout_s=5)) == []
    # A newer snapshot is sent and its ACK clears the rejection.
    fixed = snap(timeout_s=2)
    [cds2] = m.set_snapshot(fixed)
    assert cds2.version_info == fixed.version(CLUSTER)
    m.receive(sreq(CLUSTER, nonce=cds2.nonce, version=cds2.version_info))
    st = m.status().types[CLUSTER]
    assert not st.rejected and st.nack_count == 1 and st.last_acked_version == fixed.version(CLUSTER)


def test_sotw_eds_rerequest_with_acked_nonce_after_cds_change_is_answered() -> None:
    s = snap()
    m = _sotw_synced(s)
    eds_nonce = m.status().types[ENDPOINT].last_sent_nonce
    assert eds_nonce is not None
    [cds] = m.set_snapshot(snap(timeout_s=4))  # only CDS changed
    assert cds.type_url == CLUSTER
    # Envoy re-warms the clusters and re-sends its EDS request: same names, version and ACKed nonce.
    [eds] = m.receive(sreq(ENDPOINT, ["c1", "c2"], nonce=eds_nonce, version=s.version(ENDPOINT)))
    assert eds.type_url == ENDPOINT and eds.nonce != eds_nonce and sorted(eds.names) == ["c1", "c2"]
    assert eds.version_info == s.version(ENDPOINT)


# --- delta ------------------------------------------------------------------------------------------


def _by_name(resp: discovery_pb2.DeltaDiscoveryResponse) -> dict[str, str]:
    return {r.name: r.version for r in resp.resources}


def test_delta_legacy_wildcard_and_named() -> None:
    s = snap()
    m = delta(s)
    [cds] = m.receive(dreq(CLUSTER))
    msg = cds.to_message()
    assert _by_name(msg) == {n: r.version for n, r in s.resources(CLUSTER).items()}
    assert msg.system_version_info == s.version(CLUSTER) and msg.nonce == "1" and msg.type_url == CLUSTER
    assert m.status().types[CLUSTER].wildcard
    [eds] = m.receive(dreq(ENDPOINT, ["c1"]))
    assert eds.names == ("c1",)
    [eds2] = m.receive(dreq(ENDPOINT, ["c2"], nonce=eds.nonce))
    assert eds2.names == ("c2",)
    assert m.status().types[ENDPOINT].ack_count == 1
    [rds] = m.receive(dreq(ROUTE, ["r1"]))
    assert rds.names == ("r1",)
    # an empty first subscribe is a wildcard only for LDS/CDS
    m2 = delta(s)
    assert m2.receive(dreq(ENDPOINT)) == []
    assert not m2.status().types[ENDPOINT].wildcard


def test_delta_star_toggles_wildcard() -> None:
    m = delta(snap())
    [eds] = m.receive(dreq(ENDPOINT, ["*"]))
    assert sorted(eds.names) == ["c1", "c2"]
    m.receive(dreq(ENDPOINT, unsub=["*"], nonce=eds.nonce))
    assert not m.status().types[ENDPOINT].wildcard
    assert m.set_snapshot(snap({"c1": 1, "c2": 2})) == []


def test_delta_only_changed_and_removed_resources() -> None:
    m = delta(snap())
    [cds] = m.receive(dreq(CLUSTER))
    [eds] = m.receive(dreq(ENDPOINT, ["c1", "c2"]))
    m.receive(dreq(CLUSTER, nonce=cds.nonce))
    m.receive(dreq(ENDPOINT, nonce=eds.nonce))
    assert m.set_snapshot(snap()) == []
    [eds2] = m.set_snapshot(snap({"c1": 8080, "c2": 9999}))
    assert eds2.names == ("c2",) and eds2.removed == ()
    out = m.set_snapshot(snap({"c1": 8080}))
    assert [(r.type_url, r.names, r.removed) for r in out] == [(CLUSTER, (), ("c2",)), (ENDPOINT, (), ("c2",))]
    assert list(out[0].to_message().removed_resources) == ["c2"]


def test_delta_unsubscribe_stops_updates() -> None:
    m = delta(snap())
    [eds] = m.receive(dreq(ENDPOINT, ["c1", "c2"]))
    assert m.receive(dreq(ENDPOINT, unsub=["c2"], nonce=eds.nonce)) == []
    [eds2] = m.set_snapshot(snap({"c1": 1, "c2": 2}))
    assert eds2.names == ("c1",)


def test_delta_named_subscription_to_a_missing_resource_is_a_removal() -> None:
    m = delta(snap())
    [eds] = m.receive(dreq(ENDPOINT, ["c1", "ghost"]))
    assert eds.names == ("c1",) and eds.removed == ("ghost",)


def test_delta_initial_resource_versions_send_only_what_differs() -> None:
    s = snap({"c1": 1, "c2": 2, "c3": 3})
    have = {"c1": s.resources(CLUSTER)["c1"].version, "c2": "old", "gone": "x"}
    m = delta(s)
    [cds] = m.receive(dreq(CLUSTER, initial=have))
    assert sorted(cds.names) == ["c2", "c3"] and cds.removed == ("gone",)
    m2 = delta(s)
    [eds] = m2.receive(dreq(ENDPOINT, ["c1", "c2"], initial={"c1": s.resources(ENDPOINT)["c1"].version}))
    assert eds.names == ("c2",)
    m3 = delta(s)
    all_eps = {n: r.version for n, r in s.resources(ENDPOINT).items()}
    assert m3.receive(dreq(ENDPOINT, ["c1", "c2", "c3"], initial=all_eps)) == []


def test_delta_nack_is_recorded_and_not_resent_until_changed() -> None:
    m = delta(snap())
    [cds] = m.receive(dreq(CLUSTER))
    m.receive(dreq(CLUSTER, nonce=cds.nonce))
    bad = snap(timeout_s=7)
    [cds2] = m.set_snapshot(bad)
    assert m.receive(dreq(CLUSTER, nonce=cds2.nonce, error="Duration out-of-range")) == []
    st = m.status().types[CLUSTER]
    assert st.rejected and st.nack_count == 1 and st.last_nack_error == "Duration out-of-range"
    assert st.last_nack_version == bad.version(CLUSTER)
    assert m.set_snapshot(snap(timeout_s=7)) == []
    [cds3] = m.set_snapshot(snap(timeout_s=8))
    assert sorted(cds3.names) == ["c1", "c2"]
    m.receive(dreq(CLUSTER, nonce=cds3.nonce))
    assert not m.status().types[CLUSTER].rejected and m.status().types[CLUSTER].ack_count == 2


def test_delta_stale_nonce_is_not_an_ack_but_its_subscriptions_apply() -> None:
    m = delta(snap())
    [eds] = m.receive(dreq(ENDPOINT, ["c1"]))
    [eds2] = m.set_snapshot(snap({"c1": 5, "c2": 6}))
    [eds3] = m.receive(dreq(ENDPOINT, ["c2"], nonce=eds.nonce))
    assert eds3.names == ("c2",)
    st = m.status().types[ENDPOINT]
    assert st.stale_dropped == 1 and st.ack_count == 0 and st.last_sent_nonce == eds3.nonce
    assert eds2.nonce != eds3.nonce


def test_delta_cds_change_proactively_resends_unchanged_clas() -> None:
    m = delta(snap())
    [cds] = m.receive(dreq(CLUSTER))
    [eds] = m.receive(dreq(ENDPOINT, ["c1", "c2"]))
    m.receive(dreq(CLUSTER, nonce=cds.nonce))
    m.receive(dreq(ENDPOINT, nonce=eds.nonce))
    out = m.set_snapshot(snap(timeout_s=9))  # only the clusters changed
    assert [(r.type_url, sorted(r.names)) for r in out] == [(CLUSTER, ["c1", "c2"]), (ENDPOINT, ["c1", "c2"])]
    # A newly added cluster does not force its CLA: Envoy subscribes to it itself.
    out = m.set_snapshot(snap({"c1": 8080, "c2": 8081, "c3": 8082}, timeout_s=9))
    assert [(r.type_url, r.names) for r in out] == [(CLUSTER, ("c3",))]
    [eds3] = m.receive(dreq(ENDPOINT, ["c3"], nonce=out[0].nonce))
    assert eds3.names == ("c3",)


def test_delta_cds_change_on_reconnect_resends_clas() -> None:
    old = snap()
    new = snap(timeout_s=3)
    m = delta(new)
    have_eds = {n: r.version for n, r in new.resources(ENDPOINT).items()}
    assert m.receive(dreq(ENDPOINT, ["c1", "c2"], initial=have_eds)) == []
    have_cds = {n: r.version for n, r in old.resources(CLUSTER).items()}
    out = m.receive(dreq(CLUSTER, initial=have_cds))
    assert [(r.type_url, sorted(r.names)) for r in out] == [(CLUSTER, ["c1", "c2"]), (ENDPOINT, ["c1", "c2"])]


def test_streams_share_serialized_resources() -> None:
    s = snap()
    a, b = sotw(s), delta(s)
    [ra] = a.receive(sreq(CLUSTER))
    [rb] = b.receive(dreq(CLUSTER))
    c1a = next(r for r in ra.resources if r.name == "c1")
    c1b = next(r for r in rb.resources if r.name == "c1")
    assert c1a is c1b is s.resources(CLUSTER)["c1"]  # one serialization, shared by every stream
    assert a.status().types[CLUSTER].last_sent_version == b.status().types[CLUSTER].last_sent_version
