"""Bad input from proxies: garbage on the ADS stream, impostors, unknown meshes — clear errors, no crash."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from tests.e2e.conftest import AgentFactory, BackendFactory
from tests.e2e.mesh import DP, CpProcess
from tests.e2e.test_single_zone import backend_dp
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e]

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"


def ads_call(cp: CpProcess, requests: list[discovery_pb2.DiscoveryRequest]) -> grpc.RpcError | list[Any]:
    """Send ``requests`` on one SotW stream; the error the CP ended it with, or the responses."""
    with grpc.insecure_channel(f"127.0.0.1:{cp.xds_port}") as ch:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch)

        def it() -> Iterator[discovery_pb2.DiscoveryRequest]:
            yield from requests

        try:
            return list(stub.StreamAggregatedResources(it(), timeout=5))
        except grpc.RpcError as e:
            return e


def test_garbage_and_impostors_on_the_ads_stream(cp: CpProcess, agents: AgentFactory, backends: BackendFactory) -> None:
    # No node on the first message.
    err = ads_call(cp, [discovery_pb2.DiscoveryRequest(type_url=CDS)])
    assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    # A node id that is not <mesh>.<name>.
    err = ads_call(cp, [discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id="nodot"), type_url=CDS)])
    assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "<mesh>.<name>" in (err.details() or "")
    # A Dataplane nobody registered.
    err = ads_call(cp, [discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id="default.ghost"), type_url=CDS)])
    assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.NOT_FOUND
    assert "ghost" in (err.details() or "")
    # An unknown type URL.
    err = ads_call(cp, [discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id="default.ghost"), type_url="bogus")])
    assert isinstance(err, grpc.RpcError) and err.code() in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
    )

    # The CP is still serving: a real proxy registers, and an impostor claiming its node id is refused.
    b1 = backends("b1")
    agents(cp, backend_dp("backend-1", b1.port))
    wait_until(lambda: cp.insight("default", "backend-1").get("online"), timeout=10, what="backend-1 online")
    err = ads_call(cp, [discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id="default.backend-1"), type_url=CDS)])
    assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "already connected" in (err.details() or "")
    assert cp.insight("default", "backend-1")["online"] is True
    assert cp.proc is not None and cp.proc.poll() is None


def test_agent_exits_with_the_cp_message_when_rejected(cp: CpProcess, tmp_path: Path) -> None:
    doc = backend_dp("x", 8080)
    doc["mesh"] = "missing-mesh"
    f = tmp_path / "dp.json"
    f.write_text(json.dumps(doc))
    run = subprocess.run(
        [*DP, "run", "--cp", cp.url, "--dataplane-file", str(f)], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert 'mesh "missing-mesh" does not exist' in run.stdout + run.stderr
