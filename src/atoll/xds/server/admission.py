"""What an ADS stream must show before it is served: a timely, small first request with a node.

The servicer (``atoll.xds.server.grpc_server``) calls these while a stream is still unauthenticated and
counted by its ``atoll.xds.peers.PeerGate``. ``await_first_request`` waits on the stream's pump until a
request is in its inbox or the stream ended, and answers ``False`` if ``first_message_timeout`` passed
first (the servicer then ends the stream with ``DEADLINE_EXCEEDED``). ``first_node`` checks that first
request: at most ``MAX_FIRST_MESSAGE_BYTES`` (else ``RESOURCE_EXHAUSTED``) and carrying a node (else
``INVALID_ARGUMENT``); it answers a *copy* of the node, so the request itself can be dropped at once and
nothing keeps a refused request alive until a full collection.

``without_secrets`` is what a stream that must not receive SDS secrets (plaintext ADS from a remote peer)
is given instead of each snapshot: the same resources minus the Secret type, so private keys never cross
the network in clear. A snapshot without secrets is returned as is (no copy on the hot path).
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from atoll.errors import PeerProtocolError
from atoll.xds.pump import StreamPump
from atoll.xds.server.protocol import node_of_first_request
from atoll.xds.server.snapshot import Snapshot
from atoll.xds.vocabulary import PUSH_ORDER, SECRET

log = logging.getLogger(__name__)

#: The largest first request (the one that carries the node and is read before the token is checked).
MAX_FIRST_MESSAGE_BYTES = 1024 * 1024

#: Why a first request was refused: the status and message the stream is aborted with.
Refusal = tuple[grpc.StatusCode, str]


async def await_first_request(pump: StreamPump, within: float) -> bool:
    """Wait until ``pump`` has a request in its inbox or ended; ``False`` if ``within`` seconds passed."""
    try:
        async with asyncio.timeout(within):
            while not pump.inbox and not pump.ended:
                pump.wake.clear()
                await pump.wake.wait()
    except TimeoutError:
        return False
    return True


def first_node(
    first: discovery_pb2.DiscoveryRequest | discovery_pb2.DeltaDiscoveryRequest, *, stream_id: int, peer: str
) -> base_pb2.Node | Refusal:
    """A copy of the first request's node (so the request itself is not kept), or why it is refused:
    too large, or without a node."""
    size = first.ByteSize()
    if size > MAX_FIRST_MESSAGE_BYTES:
        log.warning("ADS stream %d from %s: first request of %d bytes refused", stream_id, peer, size)
        return (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the first request may be at most {MAX_FIRST_MESSAGE_BYTES} bytes, got {size}",
        )
    try:
        found = node_of_first_request(first)
    except PeerProtocolError as e:
        log.warning("ADS stream %d from %s: %s", stream_id, peer, e)
        return (grpc.StatusCode.INVALID_ARGUMENT, str(e))
    node = base_pb2.Node()
    node.CopyFrom(found)
    return node


def without_secrets(snapshot: Snapshot) -> Snapshot:
    """``snapshot`` without its SDS secrets (for a plaintext stream from a remote peer)."""
    if not snapshot.resources(SECRET):
        return snapshot
    return Snapshot({t: snapshot.resources(t) for t in PUSH_ORDER if t != SECRET})


__all__ = ["MAX_FIRST_MESSAGE_BYTES", "Refusal", "await_first_request", "first_node", "without_secrets"]
