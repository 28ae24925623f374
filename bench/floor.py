"""The floor: the least an ADS server on this machine and gRPC stack can do per change.

``python -m bench.floor --port P --snapshots FILE`` serves the snapshot variants the benchmark captured
from the Atoll CP (the same JSON ``bench/gocp`` reads: ``{"variants": [{type_url: [base64 bytes]}]}``)
to every node, SotW and delta, with no store, no generation and no per-stream serialization: every
response is built once per (variant, type) — SotW: the whole type with nonce ``<version>``; delta:
the resources that differ from the previous variant — and the same bytes are written to every stream.
A stream gets each type's current response when it first asks for the type, and the changed types,
in CDS, EDS, LDS, RDS order, when stdin says ``set K`` (answered ``ok K`` before the pushes go out).
ACKs are read and dropped. Same server options as the CP (BDP probing off, high pending limits).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import sys
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from bench.adsclient import CDS, EDS, LDS, MESSAGES, RDS, resource_name

ORDER = (CDS, EDS, LDS, RDS)
SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
SERVER_OPTIONS = [
    ("grpc.http2.bdp_probe", 0),
    ("grpc.server.max_pending_requests", 100_000),
    ("grpc.max_concurrent_streams", 1_000_000),
]


class Snapshots:
    def __init__(self, path: str) -> None:
        with open(path) as f:
            raw = json.load(f)["variants"]
        self.variants: list[dict[str, dict[str, bytes]]] = []
        self.versions: list[dict[str, str]] = []
        for v in raw:
            types: dict[str, dict[str, bytes]] = {}
            versions: dict[str, str] = {}
            for t, items in v.items():
                blobs = [base64.b64decode(b) for b in items]
                types[t] = {resource_name(MESSAGES[t].FromString(b)): b for b in blobs}
                versions[t] = hashlib.sha256(b"".join(blobs)).hexdigest()[:12]
            self.variants.append(types)
            self.versions.append(versions)
        self.current = 0
        self._sotw: dict[tuple[int, str], bytes] = {}
        self._delta: dict[tuple[int, int, str], bytes | None] = {}

    def sotw(self, v: int, t: str) -> bytes:
        key = (v, t)
        if key not in self._sotw:
            version = self.versions[v].get(t, "0")
            items = self.variants[v].get(t, {})
            self._sotw[key] = discovery_pb2.DiscoveryResponse(
                version_info=version,
                type_url=t,
                nonce=version,
                resources=[any_pb2.Any(type_url=t, value=b) for b in items.values()],
            ).SerializeToString()
        return self._sotw[key]

    def delta(self, old: int | None, v: int, t: str) -> bytes | None:
        """The delta response taking a stream from variant ``old`` (None: nothing) to ``v``."""
        key = (-1 if old is None else old, v, t)
        if key not in self._delta:
            before = {} if old is None else self.variants[old].get(t, {})
            after = self.variants[v].get(t, {})
            changed = [(n, b) for n, b in after.items() if before.get(n) != b]
            removed = [n for n in before if n not in after]
            if old is not None and not changed and not removed:
                self._delta[key] = None
            else:
                version = self.versions[v].get(t, "0")
                self._delta[key] = discovery_pb2.DeltaDiscoveryResponse(
                    type_url=t,
                    system_version_info=version,
                    nonce=f"{version}-{key[0]}",
                    resources=[
                        discovery_pb2.Resource(
                            name=n,
                            version=hashlib.sha256(b).hexdigest()[:12],
                            resource=any_pb2.Any(type_url=t, value=b),
                        )
                        for n, b in changed
                    ],
                    removed_resources=removed,
                ).SerializeToString()
        return self._delta[key]


class Floor:
    def __init__(self, snaps: Snapshots) -> None:
        self.snaps = snaps
        self.wakeups: set[asyncio.Event] = set()

    def set(self, k: int) -> None:
        self.snaps.current = k % len(self.snaps.variants)
        for e in self.wakeups:
            e.set()

    async def _serve(self, context: Any, delta: bool) -> None:
        wake = asyncio.Event()
        requests: deque[Any] = deque()
        sent: dict[str, int] = {}  # type -> variant the stream has
        self.wakeups.add(wake)

        async def reader() -> None:
            while True:
                req = await context.read()
                if req is grpc.aio.EOF:
                    return
                requests.append(req)
                wake.set()

        task = asyncio.create_task(reader())
        try:
            while not task.done() or requests:
                await wake.wait()
                wake.clear()
                while requests:
                    t = requests.popleft().type_url
                    if t not in sent:
                        cur = self.snaps.current
                        sent[t] = cur
                        msg = self.snaps.delta(None, cur, t) if delta else self.snaps.sotw(cur, t)
                        if msg is not None:
                            await context.write(msg)
                cur = self.snaps.current
                for t in ORDER:
                    old = sent.get(t)
                    if old is None or old == cur:
                        continue
                    if self.snaps.versions[old].get(t) == self.snaps.versions[cur].get(t):
                        sent[t] = cur
                        continue
                    sent[t] = cur
                    msg = self.snaps.delta(old, cur, t) if delta else self.snaps.sotw(cur, t)
                    if msg is not None:
                        await context.write(msg)
                if task.done() and not requests:
                    break
        finally:
            self.wakeups.discard(wake)
            task.cancel()

    async def sotw(self, _it: AsyncIterator[Any], context: Any) -> None:
        await self._serve(context, delta=False)

    async def delta(self, _it: AsyncIterator[Any], context: Any) -> None:
        await self._serve(context, delta=True)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--snapshots", required=True)
    args = ap.parse_args()
    floor = Floor(Snapshots(args.snapshots))
    server = grpc.aio.server(options=SERVER_OPTIONS)
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                floor.sotw,
                request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                response_serializer=bytes,
            ),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                floor.delta,
                request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                response_serializer=bytes,
            ),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    await server.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while line := await reader.readline():
        words = line.split()
        if words and words[0] == b"set":
            k = int(words[1])
            floor.set(k)
            print(f"ok {k}", flush=True)
        elif words and words[0] == b"quit":
            break
    await server.stop(0.5)


if __name__ == "__main__":
    asyncio.run(main())
