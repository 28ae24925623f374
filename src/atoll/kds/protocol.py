"""The KDS protocol as two sans-I/O state machines: ``Sender`` (writes responses) and ``Receiver``
(writes requests). Either CP plays either part: global sends on GlobalToZoneSync and receives on
ZoneToGlobalSync; the zone does the opposite. No sockets, no store, no clock here.

Exchange, per resource type (``type_url`` = the bare resource type, e.g. ``Mesh``):

1. The receiver subscribes with one ``DeltaDiscoveryRequest`` per type (no ``response_nonce``).
2. The sender answers the subscription with the **full set** of that type
   (``system_version_info = "full"``, possibly empty); afterwards it sends **deltas** (``"delta"``):
   resources whose content version changed, and ``removed_resources`` by wire name.
   A new subscription for a type (a new stream) starts again with a full set.
3. The receiver answers every response with a request carrying its ``response_nonce``: an ACK, or a
   NACK with ``error_detail`` naming what it could not take. A NACK never stalls the stream: the
   sender records it, moves on, and resends the refused resources with the next change of that type
   (so a resource the receiver cannot decode is retried when something changes, not in a hot loop).

The sender never waits for ACKs before sending the next change (acks are bookkeeping), so a slow
or silent receiver cannot deadlock it; the pump bounds the work by coalescing store events.
``PeerProtocolError`` (``atoll.errors``) is raised for messages that make no sense (unknown type, nonce never sent):
the pump answers it by ending only that stream.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from atoll.errors import PeerProtocolError
from atoll.kds.wire import WireError, from_wire, split_wire_name, to_wire
from atoll.resources.meta import Resource

FULL = "full"
DELTA = "delta"

# grpc status code INVALID_ARGUMENT, used in error_detail of NACKs
_INVALID_ARGUMENT = 3
MAX_IN_FLIGHT = 1024
"""Unanswered responses remembered per stream (for matching NACKs); older ones are forgotten."""


# --- sender ----------------------------------------------------------------------------------------


class Reply(enum.Enum):
    SUBSCRIBED = "subscribed"
    ACK = "ack"
    NACK = "nack"


@dataclass(frozen=True, slots=True)
class RequestSeen:
    """What a request from the receiver meant."""

    type: str
    reply: Reply
    error: str | None = None  # NACK message


@dataclass
class _TypeState:
    subscribed: bool = False
    sent: dict[str, str] | None = None  # wire name -> version the receiver was sent; None: full set due
    retry: set[str] = field(default_factory=set)  # NACKed names to resend with the next change
    acks: int = 0
    nacks: int = 0
    last_error: str | None = None


class Sender:
    """Decides what to send: the desired resources per type in, ``DeltaDiscoveryResponse``s out."""

    def __init__(self, types: Sequence[str]) -> None:
        self.types = tuple(types)
        self._state = {t: _TypeState() for t in self.types}
        self._desired: dict[str, dict[str, discovery_pb2.Resource]] = {}
        self._pending: dict[str, tuple[str, frozenset[str]]] = {}  # nonce -> (type, names sent)
        self._nonces = itertools.count(1)

    # inputs

    def set_desired(self, type: str, resources: Iterable[Resource[Any]]) -> None:
        """The full set of ``type`` the receiver should have now (replaces the previous set)."""
        self.set_desired_wire(type, [to_wire(r) for r in resources])

    def set_desired_wire(self, type: str, items: Iterable[discovery_pb2.Resource]) -> None:
        if type not in self._state:
            raise ValueError(f"{type} is not a type this sender sends")
        new = {i.name: i for i in items}
        old = self._desired.get(type)
        st = self._state[type]
        if old is not None and st.retry and _versions(old) != _versions(new) and st.sent is not None:
            for name in st.retry:  # something changed: resend what was refused too
                st.sent.pop(name, None)
            st.retry.clear()
        self._desired[type] = new

    def patch_desired(self, type: str, put: Iterable[Resource[Any]], remove: Iterable[str] = ()) -> None:
        """Change part of the desired set of ``type`` (given before with ``set_desired``): ``put``
        adds or replaces those resources, ``remove`` drops those wire names; the rest stays."""
        self.patch_desired_wire(type, [to_wire(r) for r in put], remove)

    def patch_desired_wire(self, type: str, put: Iterable[discovery_pb2.Resource], remove: Iterable[str] = ()) -> None:
        cur = self._desired.get(type)
        if cur is None:
            raise ValueError(f"{type}: patch_desired before set_desired")
        changed = False
        for item in put:
            old = cur.get(item.name)
            changed = changed or old is None or old.version != item.version
            cur[item.name] = item
        for name in remove:
            changed = cur.pop(name, None) is not None or changed
        st = self._state[type]
        if changed and st.retry and st.sent is not None:  # as in set_desired_wire
            for name in st.retry:
                st.sent.pop(name, None)
            st.retry.clear()

    def receive(self, request: discovery_pb2.DeltaDiscoveryRequest) -> RequestSeen:
        """Take one request: a subscription, an ACK or a NACK. ``PeerProtocolError`` if nonsense."""
        type = request.type_url
        st = self._state.get(type)
        if st is None:
            raise PeerProtocolError(f"request for unknown type {type!r}; this stream sends {', '.join(self.types)}")
        if not request.response_nonce:
            st.subscribed = True
            st.sent = None
            st.retry.clear()
            for nonce in [n for n, (t, _) in self._pending.items() if t == type]:
                del self._pending[nonce]
            return RequestSeen(type, Reply.SUBSCRIBED)
        sent = self._pending.pop(request.response_nonce, None)
        if sent is None or sent[0] != type:
            # Nonces of responses before a re-subscription are forgotten on purpose: not an error.
            return RequestSeen(type, Reply.ACK)
        if request.HasField("error_detail") and (request.error_detail.message or request.error_detail.code):
            st.nacks += 1
            st.last_error = request.error_detail.message or f"code {request.error_detail.code}"
            refused = _refused_names(st.last_error, sent[1])
            st.retry |= refused
            return RequestSeen(type, Reply.NACK, st.last_error)
        st.acks += 1
        st.last_error = None
        return RequestSeen(type, Reply.ACK)

    # outputs

    def responses(self) -> list[discovery_pb2.DeltaDiscoveryResponse]:
        """What to send now: a full set for new subscriptions, deltas for changes; marks them sent."""
        out = []
        for type in self.types:
            st = self._state[type]
            desired = self._desired.get(type)
            if not st.subscribed or desired is None:
                continue
            if st.sent is None:
                changed = list(desired.values())
                removed: list[str] = []
                kind = FULL
                st.sent = {}
            else:
                changed = [r for n, r in desired.items() if st.sent.get(n) != r.version]
                removed = sorted(n for n in st.sent if n not in desired)
                kind = DELTA
                if not changed and not removed:
                    continue
            nonce = f"{next(self._nonces)}"
            resp = discovery_pb2.DeltaDiscoveryResponse(
                type_url=type,
                system_version_info=kind,
                nonce=nonce,
                resources=sorted(changed, key=lambda r: r.name),
                removed_resources=removed,
            )
            for r in changed:
                st.sent[r.name] = r.version
            for n in removed:
                del st.sent[n]
            self._pending[nonce] = (type, frozenset(r.name for r in changed))
            while len(self._pending) > MAX_IN_FLIGHT:  # a peer that never answers: forget the oldest
                del self._pending[next(iter(self._pending))]
            out.append(resp)
        return out

    # status

    def last_error(self, type: str) -> str | None:
        return self._state[type].last_error

    def counts(self, type: str) -> tuple[int, int]:
        """(ACKs, NACKs) received for ``type``."""
        st = self._state[type]
        return st.acks, st.nacks

    @property
    def in_flight(self) -> int:
        """Responses sent and not yet answered."""
        return len(self._pending)


def _versions(items: Mapping[str, discovery_pb2.Resource]) -> dict[str, str]:
    return {n: r.version for n, r in items.items()}


def _refused_names(message: str, sent: frozenset[str]) -> set[str]:
    """The names a NACK message mentions (``Receiver`` names each refused resource); all if none."""
    named = {n for n in sent if f" {n}:" in f" {message}"}
    return named or set(sent)


# --- receiver --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    """One response, decoded: ``full`` sets replace every resource of the type (reconcile)."""

    type: str
    nonce: str
    full: bool
    resources: list[Resource[Any]]
    removed: list[tuple[str, str | None]]  # (name, mesh)
    errors: list[str]  # one per resource that could not be read; those are not applied
    refused: frozenset[str]  # wire names of those resources: a full set must not delete them


class Receiver:
    """Subscribes to types and turns responses into validated ``Batch``es and ACK/NACK requests."""

    def __init__(self, types: Sequence[str]) -> None:
        self.types = tuple(types)
        self._full_seen: set[str] = set()

    def subscriptions(self) -> list[discovery_pb2.DeltaDiscoveryRequest]:
        """The first requests of a stream: one subscription per type (a full set comes back)."""
        self._full_seen.clear()
        return [discovery_pb2.DeltaDiscoveryRequest(type_url=t, resource_names_subscribe=["*"]) for t in self.types]

    def receive(self, response: discovery_pb2.DeltaDiscoveryResponse) -> Batch:
        """Decode one response; resources that fail validation are listed in ``errors``, not raised.

        ``PeerProtocolError`` if the response itself is unusable (unknown type, no nonce, a delta
        before the full set)."""
        type = response.type_url
        if type not in self.types:
            raise PeerProtocolError(f"response for type {type!r} that was not subscribed to")
        if not response.nonce:
            raise PeerProtocolError(f"{type} response without a nonce")
        full = response.system_version_info == FULL
        if not full and type not in self._full_seen:
            raise PeerProtocolError(f"{type}: a delta arrived before the full set")
        if full:
            self._full_seen.add(type)
        resources: list[Resource[Any]] = []
        errors: list[str] = []
        refused: set[str] = set()
        for item in response.resources:
            try:
                resources.append(from_wire(type, item))
            except WireError as e:
                errors.append(f"{item.name}: {e}")
                refused.add(item.name)
        removed = [split_wire_name(n) for n in response.removed_resources]
        return Batch(type, response.nonce, full, resources, removed, errors, frozenset(refused))

    def ack(self, batch: Batch) -> discovery_pb2.DeltaDiscoveryRequest:
        return discovery_pb2.DeltaDiscoveryRequest(type_url=batch.type, response_nonce=batch.nonce)

    def nack(self, batch: Batch, message: str) -> discovery_pb2.DeltaDiscoveryRequest:
        return discovery_pb2.DeltaDiscoveryRequest(
            type_url=batch.type,
            response_nonce=batch.nonce,
            error_detail=status_pb2.Status(code=_INVALID_ARGUMENT, message=message),
        )
