"""Sans-I/O xDS stream state machines: requests and snapshots in, responses out.

``SotwStream`` (state of the world) and ``DeltaStream`` (incremental) hold everything one ADS stream
knows — per-type subscriptions, the latest nonce sent, what was ACKed or NACKed (kept in ``status.py``'s
``TypeState``) — and no sockets, tasks or clocks of their own (the clock is injected). Feed them events:

- ``receive(request)``: a request arrived; returns the responses to send, in order.
- ``set_snapshot(snapshot)``: this node has a new snapshot; returns the responses to send, in push order
  (SDS, CDS, EDS, LDS, RDS), only for types the peer asked for and only what changed.

Rules (Envoy's xDS protocol, plus the pitfalls measured in ``notes/xds-with-real-envoy.md``):

- Nonces come from one counter per stream. A request whose ``response_nonce`` is not the latest nonce sent
  for its type is stale: SotW drops it whole; delta still applies its subscription changes (they are
  diffs and would otherwise be lost) but does not treat it as an ACK/NACK.
- A request answering the latest nonce is an ACK, or a NACK when it carries ``error_detail``. A NACK is
  recorded (count, message, rejected version, time) and the rejected content is not sent again; a newer
  snapshot is sent as usual.
- SotW subscriptions are the request's ``resource_names``; an empty list means wildcard only for LDS/CDS.
  Responses carry every subscribed resource of the type; ``version_info`` is the snapshot's per-type
  version. Only types whose selected content changed are pushed.
- Delta subscriptions are diffs (``*`` toggles wildcard; an empty first subscribe list is the legacy
  wildcard for LDS/CDS). ``initial_resource_versions`` seed what the peer already has; responses carry
  only resources whose version differs from the peer's, and ``removed_resources`` for names the peer has
  that are gone. A named subscription to a resource that does not exist is answered with a removal.
- The EDS pitfall: when an existing EDS cluster changes, Envoy re-warms it and waits for its
  ClusterLoadAssignment. In SotW it re-sends its EDS request with the already-ACKed nonce — answered here
  with the current CLAs. In delta it sends nothing, so after a CDS response that changed existing
  clusters the machine proactively re-sends those clusters' CLAs.

Errors name the side at fault: ``PeerProtocolError`` is a malformed request from the peer (the pump ends
that stream with INVALID_ARGUMENT); a NACK is the peer rejecting our config and is only recorded in the
status; ``snapshot.InconsistentSnapshot`` is a local generation error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import MappingProxyType

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from atoll.errors import AtollError, PeerProtocolError
from atoll.xds.server.snapshot import Snapshot, VersionedResource, encode_bytes_field
from atoll.xds.server.status import Mode, StreamStatus, TypeState
from atoll.xds.vocabulary import CLUSTER, ENDPOINT, KNOWN_TYPES, PUSH_ORDER, WILDCARD_TYPES, eds_names_of_cluster

Clock = Callable[[], float]


class XdsError(AtollError):
    """Base of the xDS server's errors."""


def node_of_first_request(
    request: discovery_pb2.DiscoveryRequest | discovery_pb2.DeltaDiscoveryRequest,
) -> base_pb2.Node:
    """The node of a stream's first request; a missing node or node id is the peer's error."""
    if not request.HasField("node") or not request.node.id:
        raise PeerProtocolError("the first request on a stream must carry node.id")
    node: base_pb2.Node = request.node
    return node


def _check_type(type_url: str) -> None:
    if not type_url:
        raise PeerProtocolError("request has no type_url (required on an aggregated stream)")
    if type_url not in KNOWN_TYPES:
        raise PeerProtocolError(f"unknown or unsupported type_url {type_url!r}")


# --- responses --------------------------------------------------------------------------------------


def _frame(version: str, resources: list[bytes], type_url: str, nonce: str, removed: tuple[str, ...] = ()) -> bytes:
    """A (Delta)DiscoveryResponse on the wire. Both messages number their fields alike: version 1,
    resources 2 (pre-encoded by ``VersionedResource``), type_url 4, nonce 5; delta's removed names 6."""
    head = encode_bytes_field(1, version.encode())
    tail = encode_bytes_field(4, type_url.encode()) + encode_bytes_field(5, nonce.encode())
    return b"".join((head, *resources, tail, *(encode_bytes_field(6, n.encode()) for n in removed)))


class _Response:
    """What both kinds of response share."""

    __slots__ = ()
    resources: tuple[VersionedResource, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.resources)


@dataclass(frozen=True, slots=True)
class SotwResponse(_Response):
    """One DiscoveryResponse to send. ``to_bytes()`` splices the resources' shared, pre-serialized bytes."""

    type_url: str
    version_info: str
    nonce: str
    resources: tuple[VersionedResource, ...]

    def to_bytes(self) -> bytes:
        return _frame(self.version_info, [r.sotw_field for r in self.resources], self.type_url, self.nonce)

    def to_message(self) -> discovery_pb2.DiscoveryResponse:
        return discovery_pb2.DiscoveryResponse.FromString(self.to_bytes())


@dataclass(frozen=True, slots=True)
class DeltaResponse(_Response):
    """One DeltaDiscoveryResponse to send: changed resources and removed names of one type."""

    type_url: str
    system_version_info: str
    nonce: str
    resources: tuple[VersionedResource, ...]
    removed: tuple[str, ...]

    def to_bytes(self) -> bytes:
        fields = [r.delta_field for r in self.resources]
        return _frame(self.system_version_info, fields, self.type_url, self.nonce, self.removed)

    def to_message(self) -> discovery_pb2.DeltaDiscoveryResponse:
        return discovery_pb2.DeltaDiscoveryResponse.FromString(self.to_bytes())


class _Stream:
    mode: Mode

    def __init__(self, node_id: str, stream_id: int = 0, *, clock: Clock = time.time) -> None:
        self.node_id = node_id
        self.stream_id = stream_id
        self._clock = clock
        self.opened_at = clock()
        self._snapshot: Snapshot | None = None
        self._types: dict[str, TypeState] = {}
        self._nonce = 0
        #: Bumped on every send, ACK and NACK: the pump reports status when it changed.
        self.status_serial = 0

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def status(self) -> StreamStatus:
        return StreamStatus(
            stream_id=self.stream_id,
            node_id=self.node_id,
            mode=self.mode,
            opened_at=self.opened_at,
            types=MappingProxyType({t: s.freeze() for t, s in self._types.items()}),
        )

    def _state(self, type_url: str) -> tuple[TypeState, bool]:
        _check_type(type_url)
        st = self._types.get(type_url)
        if st is None:
            st = self._types[type_url] = TypeState(type_url)
            return st, True
        st.frozen = None  # a request may change subscriptions and counters
        return st, False

    def _next_nonce(self) -> str:
        self._nonce += 1
        return str(self._nonce)

    def _record_sent(self, st: TypeState, nonce: str, version: str) -> None:
        st.frozen = None
        st.nonce = nonce
        st.version = version
        st.sent_at = self._clock()
        st.sent_count += 1
        st.answered = False
        st.rejected = False
        self.status_serial += 1

    def _record_answer(self, st: TypeState, version_info: str, error: discovery_pb2.DiscoveryRequest | None) -> None:
        st.frozen = None
        st.answered = True
        if error is None:
            st.ack_count += 1
            st.acked_version = version_info or st.version
            st.acked_at = self._clock()
            st.rejected = False
        else:
            st.nack_count += 1
            st.nack_error = str(error.error_detail.message) or f"NACK (grpc code {error.error_detail.code})"
            st.nack_version = st.version
            st.nack_at = self._clock()
            st.rejected = True
        self.status_serial += 1


class SotwStream(_Stream):
    """State of one state-of-the-world ADS stream (``DiscoveryRequest`` / ``DiscoveryResponse``)."""

    mode: Mode = "sotw"

    def receive(self, request: discovery_pb2.DiscoveryRequest) -> list[SotwResponse]:
        st, _ = self._state(request.type_url)
        nonce = request.response_nonce
        if nonce and st.nonce is not None and nonce != st.nonce:
            st.stale += 1  # answers a response that a newer one superseded
            return []
        names = request.resource_names
        if st.names_list is None or len(names) != len(st.names_list) or list(names) != st.names_list:
            st.names_list = list(names)
            st.names = {n for n in names if n != "*"}
            st.wildcard = "*" in names or (not names and st.type_url in WILDCARD_TYPES)
            st.sub_gen += 1
        if not nonce or st.nonce is None:
            respond = True  # first request for this type on this stream
        elif not st.answered:
            self._record_answer(st, request.version_info, request if request.HasField("error_detail") else None)
            respond = False  # answer only if the wanted content differs (checked below)
        else:
            # The latest response was already answered and the peer asks again: an EDS cluster re-warming
            # after a CDS change (pitfall 1) or a subscription change. Answer with the current state, but
            # never re-send content the peer rejected.
            respond = not st.rejected
        if self._snapshot is None:
            return []
        version, selected, key = self._select(st, self._snapshot)
        st.diffed = (version, st.sub_gen)
        if key == st.key and not respond:
            return []
        if key == st.key and st.rejected:
            return []
        return [self._send(st, version, selected, key)]

    def set_snapshot(self, snapshot: Snapshot) -> list[SotwResponse]:
        self._snapshot = snapshot
        out: list[SotwResponse] = []
        for type_url in PUSH_ORDER:
            st = self._types.get(type_url)
            if st is None or st.diffed == (snapshot.version(type_url), st.sub_gen):
                continue
            version, selected, key = self._select(st, snapshot)
            st.diffed = (version, st.sub_gen)
            if key != st.key:
                out.append(self._send(st, version, selected, key))
        return out

    @staticmethod
    def _select(st: TypeState, snapshot: Snapshot) -> tuple[str, tuple[VersionedResource, ...], object]:
        version = snapshot.version(st.type_url)
        by_name = snapshot.resources(st.type_url)
        if st.wildcard:
            return version, tuple(by_name.values()), (st.sub_gen, version)
        selected = tuple(by_name[n] for n in st.names_list or () if n in by_name)
        return version, selected, (st.sub_gen, tuple(r.version for r in selected))

    def _send(self, st: TypeState, version: str, selected: tuple[VersionedResource, ...], key: object) -> SotwResponse:
        nonce = self._next_nonce()
        st.key = key
        self._record_sent(st, nonce, version)
        return SotwResponse(type_url=st.type_url, version_info=version, nonce=nonce, resources=selected)


class DeltaStream(_Stream):
    """State of one incremental ADS stream (``DeltaDiscoveryRequest`` / ``DeltaDiscoveryResponse``)."""

    mode: Mode = "delta"

    def __init__(self, node_id: str, stream_id: int = 0, *, clock: Clock = time.time) -> None:
        super().__init__(node_id, stream_id, clock=clock)
        #: EDS names of the clusters the latest CDS response changed (not added): they re-warm.
        self._rewarm: set[str] = set()

    def receive(self, request: discovery_pb2.DeltaDiscoveryRequest) -> list[DeltaResponse]:
        st, first = self._state(request.type_url)
        nonce = request.response_nonce
        if nonce:
            if nonce == st.nonce and not st.answered:
                self._record_answer(st, "", request if request.HasField("error_detail") else None)
            else:
                st.stale += 1  # still apply its subscription changes below
        subscribe = request.resource_names_subscribe
        unsubscribe = request.resource_names_unsubscribe
        if first or subscribe or unsubscribe:
            st.sub_gen += 1
        new_names: list[str] = []
        if first and not subscribe and st.type_url in WILDCARD_TYPES:
            st.wildcard = True  # legacy wildcard
        for name in subscribe:
            if name == "*":
                st.wildcard = True
            elif name not in st.names:
                st.names.add(name)
                new_names.append(name)
        for name in unsubscribe:
            if name == "*":
                st.wildcard = False
                st.client = {n: v for n, v in st.client.items() if n in st.names}
            else:
                st.names.discard(name)
                if not st.wildcard:
                    st.client.pop(name, None)
        if first:
            for name, version in request.initial_resource_versions.items():
                if st.wildcard or name in st.names:
                    st.client[name] = version
        if self._snapshot is None or not (first or subscribe):
            return []
        out: list[DeltaResponse] = []
        resp = self._diff(st, self._snapshot, missing=new_names)
        if resp is not None:
            out.append(resp)
            if st.type_url == CLUSTER:
                out.extend(self._resend_eds(self._snapshot))
        return out

    def set_snapshot(self, snapshot: Snapshot) -> list[DeltaResponse]:
        self._snapshot = snapshot
        out: list[DeltaResponse] = []
        self._rewarm.clear()
        for type_url in PUSH_ORDER:
            st = self._types.get(type_url)
            if st is None:
                continue
            forced = self._rewarm if type_url == ENDPOINT else ()
            if not forced and st.diffed == (snapshot.version(type_url), st.sub_gen):
                continue  # nothing changed for this type since it was last compared
            resp = self._diff(st, snapshot, forced=forced)
            if resp is not None:
                out.append(resp)
        return out

    def _resend_eds(self, snapshot: Snapshot) -> list[DeltaResponse]:
        st = self._types.get(ENDPOINT)
        if st is None or not self._rewarm:
            return []
        resp = self._diff(st, snapshot, forced=self._rewarm)
        return [] if resp is None else [resp]

    def _diff(
        self, st: TypeState, snapshot: Snapshot, *, forced: Iterable[str] = (), missing: Iterable[str] = ()
    ) -> DeltaResponse | None:
        by_name = snapshot.resources(st.type_url)
        client = st.client
        forced_set = set(forced)
        st.diffed = (snapshot.version(st.type_url), st.sub_gen)
        send: list[VersionedResource] = []
        if st.wildcard:
            candidates: Iterable[VersionedResource] = by_name.values()
        else:
            candidates = [by_name[n] for n in st.names if n in by_name]
        for r in candidates:
            if client.get(r.name) != r.version or r.name in forced_set:
                send.append(r)
        removed = [n for n in client if n not in by_name]
        removed.extend(n for n in missing if n not in by_name and n not in client)
        if not send and not removed:
            return None
        if st.type_url == CLUSTER:
            self._rewarm = {e for r in send if r.name in client for e in eds_names_of_cluster(r.message)}
        for r in send:
            client[r.name] = r.version
        for n in removed:
            client.pop(n, None)
        nonce = self._next_nonce()
        version = snapshot.version(st.type_url)
        self._record_sent(st, nonce, version)
        return DeltaResponse(
            type_url=st.type_url,
            system_version_info=version,
            nonce=nonce,
            resources=tuple(send),
            removed=tuple(removed),
        )


__all__ = [
    "DeltaResponse",
    "DeltaStream",
    "SotwResponse",
    "SotwStream",
    "XdsError",
    "node_of_first_request",
]
