"""Simulated proxies for the benchmarks: one process running many real gRPC ADS clients (grpc.aio).

``python -m bench.adsclient`` reads one JSON line from stdin — ``{"target": "127.0.0.1:5678",
"mode": "sotw"|"delta", "nodes": ["default.p-0", ...], "capture": true}`` — opens one ADS stream per
node, each on its own channel (its own TCP connection, as separate proxies would), then answers
commands, one JSON line each way:

- ``{"cmd": "status"}`` -> streams open, streams that ACKed every type once (``ready``), streams that
  ACKed a response since the last mark (``acked_since_mark``), the newest ACK time since the mark
  (``last_ack``, ``time.monotonic()``, which on Linux is one clock for every process), the newest
  response time, NACKs sent (always 0: the clients accept what decodes), stream errors (and their
  count by gRPC status code), process CPU.
- ``{"cmd": "mark"}`` -> starts a new measuring window.
- ``{"cmd": "snapshot"}`` -> (first stream of a ``capture`` worker) its current resources, per type URL,
  as base64 serialized bytes: what the floor and the Go peer replay.
- ``{"cmd": "quit"}``.

Each client behaves like Envoy: wildcard CDS and LDS, then EDS for the EDS clusters it got and RDS for
the route names its listeners' HTTP connection managers name. Every response is decoded (every
resource parsed into its message, HCMs unpacked), then ACKed with the response's nonce (SotW: its
version and the subscribed names; delta: the nonce). A stream that ends is counted in ``errors`` and
reconnected after a short back-off (the reconnect-storm benchmark relies on it), the window's counters
continuing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.service.discovery.v3 import discovery_pb2

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
MESSAGES: dict[str, Any] = {
    CDS: cluster_pb2.Cluster,
    EDS: endpoint_pb2.ClusterLoadAssignment,
    LDS: listener_pb2.Listener,
    RDS: route_pb2.RouteConfiguration,
}
METHOD_SOTW = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
METHOD_DELTA = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
CHANNEL_OPTIONS = [("grpc.http2.bdp_probe", 0), ("grpc.use_local_subchannel_pool", 1)]


def resource_name(msg: Any) -> str:
    """A resource's name (a ClusterLoadAssignment's is its ``cluster_name``)."""
    return str(msg.cluster_name if isinstance(msg, endpoint_pb2.ClusterLoadAssignment) else msg.name)


@dataclass
class Window:
    """Counters since the last mark."""

    since: float = 0.0
    acked: set[int] = field(default_factory=set)
    last_ack: float = 0.0
    last_rx: float = 0.0
    acks: int = 0


@dataclass
class Client:
    """One simulated proxy: its stream's state (subscriptions, resources, versions)."""

    index: int
    node_id: str
    resources: dict[str, dict[str, bytes]] = field(default_factory=dict)
    acked_types: set[str] = field(default_factory=set)
    eds: dict[str, str] = field(default_factory=dict)
    rds: dict[str, list[str]] = field(default_factory=dict)
    ready: bool = False
    open: bool = False


class Worker:
    def __init__(self, target: str, mode: str, nodes: list[str], capture: bool) -> None:
        self.target = target
        self.mode = mode
        self.clients = [Client(i, n) for i, n in enumerate(nodes)]
        self.capture = capture
        self.window = Window(since=time.monotonic())
        self.errors = 0
        self.nacks = 0
        self.last_error = ""
        self.first_error = ""
        self.codes: dict[str, int] = {}  # stream endings by gRPC status code
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        for c in self.clients:
            self._tasks.append(asyncio.create_task(self._run(c), name=f"ads-{c.node_id}"))

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, c: Client) -> None:
        while not self._stopping:
            try:
                async with grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS) as ch:
                    if self.mode == "delta":
                        await self._delta(c, ch)
                    else:
                        await self._sotw(c, ch)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a stream that ends (CP restart, refusal) counts and reconnects
                self.errors += 1
                code = e.code().name if isinstance(e, grpc.aio.AioRpcError) else type(e).__name__
                self.codes[code] = self.codes.get(code, 0) + 1
                self.last_error = f"{type(e).__name__}: {e}"[:300]
                if not self.first_error:
                    self.first_error = self.last_error
            c.open = False
            c.ready = False
            c.acked_types.clear()
            c.resources.clear()
            c.eds.clear()
            c.rds.clear()
            if not self._stopping:
                await asyncio.sleep(0.05)  # back-off before reconnecting, not a wait for state

    def _node(self, c: Client) -> base_pb2.Node:
        return base_pb2.Node(id=c.node_id, cluster=c.node_id.split(".", 1)[-1])

    def _acked(self, c: Client, type_url: str) -> None:
        now = time.monotonic()
        w = self.window
        w.acks += 1
        w.acked.add(c.index)
        w.last_ack = max(w.last_ack, now)
        c.acked_types.add(type_url)
        if not c.ready and {CDS, LDS} <= c.acked_types and (EDS in c.acked_types or not c.eds):
            c.ready = True

    def _decode(self, c: Client, type_url: str, items: list[tuple[str, bytes]], replace: bool) -> None:
        """Parse every resource; keep the EDS cluster and RDS route names a client subscribes to."""
        current = {} if replace else dict(c.resources.get(type_url, {}))
        cls = MESSAGES.get(type_url)
        for name, raw in items:
            if cls is not None:
                msg = cls.FromString(raw)
                name = name or resource_name(msg)
                if type_url == CDS and msg.type == cluster_pb2.Cluster.EDS:
                    c.eds[name] = msg.eds_cluster_config.service_name or name
                elif type_url == LDS:
                    c.rds[name] = []
                    for chain in msg.filter_chains:
                        for f in chain.filters:
                            if f.typed_config.type_url == HCM:
                                h = hcm_pb2.HttpConnectionManager.FromString(f.typed_config.value)
                                if h.HasField("rds"):
                                    c.rds[name].append(h.rds.route_config_name)
            current[name] = raw
        if type_url == CDS:
            c.eds = {k: v for k, v in c.eds.items() if k in current}
        elif type_url == LDS:
            c.rds = {k: v for k, v in c.rds.items() if k in current}
        c.resources[type_url] = current

    def _eds_names(self, c: Client) -> list[str]:
        return sorted(set(c.eds.values()))

    def _rds_names(self, c: Client) -> list[str]:
        return sorted({n for names in c.rds.values() for n in names})

    async def _sotw(self, c: Client, ch: grpc.aio.Channel) -> None:
        call = ch.stream_stream(
            METHOD_SOTW,
            request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
            response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
        )()
        subscribed: dict[str, list[str]] = {CDS: [], LDS: []}
        last_nonce: dict[str, str] = {}
        versions: dict[str, str] = {}
        await call.write(discovery_pb2.DiscoveryRequest(node=self._node(c), type_url=CDS))
        await call.write(discovery_pb2.DiscoveryRequest(type_url=LDS))
        c.open = True
        async for resp in call:
            self.window.last_rx = time.monotonic()
            t = resp.type_url
            self._decode(c, t, [("", a.value) for a in resp.resources], replace=True)
            last_nonce[t] = resp.nonce
            versions[t] = resp.version_info
            await call.write(
                discovery_pb2.DiscoveryRequest(
                    type_url=t, version_info=resp.version_info, response_nonce=resp.nonce, resource_names=subscribed[t]
                )
            )
            self._acked(c, t)
            if t in (CDS, LDS):
                dep, names = (EDS, self._eds_names(c)) if t == CDS else (RDS, self._rds_names(c))
                if names and names != subscribed.get(dep):
                    subscribed[dep] = names
                    await call.write(
                        discovery_pb2.DiscoveryRequest(
                            type_url=dep,
                            version_info=versions.get(dep, ""),
                            response_nonce=last_nonce.get(dep, ""),
                            resource_names=names,
                        )
                    )

    async def _delta(self, c: Client, ch: grpc.aio.Channel) -> None:
        call = ch.stream_stream(
            METHOD_DELTA,
            request_serializer=discovery_pb2.DeltaDiscoveryRequest.SerializeToString,
            response_deserializer=discovery_pb2.DeltaDiscoveryResponse.FromString,
        )()
        subscribed: dict[str, set[str]] = {}
        await call.write(discovery_pb2.DeltaDiscoveryRequest(node=self._node(c), type_url=CDS))
        await call.write(discovery_pb2.DeltaDiscoveryRequest(type_url=LDS))
        c.open = True
        async for resp in call:
            self.window.last_rx = time.monotonic()
            t = resp.type_url
            current = dict(c.resources.get(t, {}))
            for name in resp.removed_resources:
                current.pop(name, None)
            c.resources[t] = current
            self._decode(c, t, [(r.name, r.resource.value) for r in resp.resources], replace=False)
            await call.write(discovery_pb2.DeltaDiscoveryRequest(type_url=t, response_nonce=resp.nonce))
            self._acked(c, t)
            if t in (CDS, LDS):
                dep, names = (EDS, self._eds_names(c)) if t == CDS else (RDS, self._rds_names(c))
                want, have = set(names), subscribed.get(dep, set())
                if want != have:
                    subscribed[dep] = want
                    await call.write(
                        discovery_pb2.DeltaDiscoveryRequest(
                            type_url=dep,
                            resource_names_subscribe=sorted(want - have),
                            resource_names_unsubscribe=sorted(have - want),
                        )
                    )

    def status(self) -> dict[str, Any]:
        w = self.window
        cpu = os.times()
        return {
            "streams": sum(c.open for c in self.clients),
            "ready": sum(c.ready for c in self.clients),
            "acked_since_mark": len(w.acked),
            "acks": w.acks,
            "last_ack": w.last_ack,
            "last_rx": w.last_rx,
            "nacks": self.nacks,
            "errors": self.errors,
            "last_error": self.last_error,
            "first_error": self.first_error,
            "codes": self.codes,
            "cpu": cpu.user + cpu.system,
        }

    def mark(self) -> None:
        self.window = Window(since=time.monotonic())

    def snapshot(self) -> dict[str, list[str]]:
        c = self.clients[0]
        return {t: [base64.b64encode(v).decode() for _, v in sorted(items.items())] for t, items in c.resources.items()}


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config = json.loads(await reader.readline())
    worker = Worker(config["target"], config["mode"], config["nodes"], bool(config.get("capture")))
    worker.start()

    def reply(obj: object) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"started": len(worker.clients)})
    try:
        while line := await reader.readline():
            cmd = json.loads(line)["cmd"]
            if cmd == "status":
                reply(worker.status())
            elif cmd == "mark":
                worker.mark()
                reply({"ok": True})
            elif cmd == "snapshot":
                reply(worker.snapshot())
            elif cmd == "quit":
                break
    finally:
        await worker.stop()


if __name__ == "__main__":
    asyncio.run(main())
