"""A proxyless grpcio client (``xds:///echo:PORT``) gets listeners, routes, clusters and endpoints from
the zone CP's ADS server and reaches the service without any sidecar."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from tests.e2e.mesh import CpProcess
from tests.helpers import ATOLL, free_port

pytestmark = [pytest.mark.e2e]

CLIENT = """
import sys, grpc
target = sys.argv[1]
with grpc.insecure_channel(target) as ch:
    call = ch.unary_unary("/echo.Echo/Say", request_serializer=None, response_deserializer=None)
    for i in range(3):
        print(call(b"hi-%d" % i, timeout=10).decode())
"""


class Echo(grpc.GenericRpcHandler):
    def __init__(self, label: str) -> None:
        self.label = label

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method != "/echo.Echo/Say":
            return None
        return grpc.unary_unary_rpc_method_handler(lambda req, ctx: f"{self.label}:".encode() + req)


def test_proxyless_grpc_client_reaches_service_through_xds(cp: CpProcess, tmp_path: Path) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((Echo("echo-1"),))
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        cp.put(
            {
                "type": "Dataplane",
                "mesh": "default",
                "name": "echo-1",
                "networking": {
                    "address": "127.0.0.1",
                    "inbound": [{"port": port, "tags": {"kuma.io/service": "echo", "kuma.io/protocol": "grpc"}}],
                },
            }
        )
        target_port = 50051
        cp.put(
            {
                "type": "Dataplane",
                "mesh": "default",
                "name": "grpc-client",
                "networking": {
                    "address": "127.0.0.1",
                    "inbound": [{"port": free_port(), "tags": {"kuma.io/service": "grpc-client"}}],
                    "outbound": [{"port": target_port, "tags": {"kuma.io/service": "echo"}}],
                },
            }
        )
        bootstrap = tmp_path / "grpc-bootstrap.json"
        made = subprocess.run(
            [
                *ATOLL,
                "dp",
                "grpc-bootstrap",
                "--cp-xds",
                f"127.0.0.1:{cp.xds_port}",
                "--mesh",
                "default",
                "--name",
                "grpc-client",
                "-o",
                str(bootstrap),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert made.returncode == 0, made.stderr
        env = {**os.environ, "GRPC_XDS_BOOTSTRAP": str(bootstrap)}
        run = subprocess.run(
            [sys.executable, "-c", CLIENT, f"xds:///echo:{target_port}"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.split() == ["echo-1:hi-0", "echo-1:hi-1", "echo-1:hi-2"]
        insight = cp.insight("default", "grpc-client")
        assert insight["proxyType"] == "proxyless", insight
    finally:
        server.stop(None)
