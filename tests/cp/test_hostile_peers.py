"""A real control-plane process against peers that never authenticate: oversized unauthenticated ADS
requests do not grow its memory, silent ADS streams and slow (slowloris) REST clients are closed in
bounded time, and the process serves on. Configuration of ADS TLS (``xds_tls``)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from atoll.cp.config import load_config
from atoll.errors import ConfigError
from tests.helpers import CpProcess, CpProcesses, free_port, wait_cp_ready, wait_until

METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[tuple[CpProcess, int]]:
    procs = CpProcesses()
    xds_port = free_port()
    env = {"ATOLL_XDS_PORT": str(xds_port), "ATOLL_XDS_FIRST_MESSAGE_TIMEOUT": "1"}
    try:
        started = procs.start(tmp_path / "data", tmp_path / "cp.log", env)
        wait_cp_ready(started.proc, started.diag, started.log, timeout=30)
        yield started, xds_port
    finally:
        procs.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def request(size: int) -> discovery_pb2.DiscoveryRequest:
    req = discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id="default.intruder"), type_url="x")
    req.resource_names.append("x" * size)
    return req


def send_unauthenticated(port: int, size: int, count: int) -> list[grpc.StatusCode]:
    codes = []
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        call = channel.stream_stream(
            METHOD,
            request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
            response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
        )
        payload = request(size)
        for _ in range(count):
            try:
                for _ in call(iter([payload]), timeout=20):
                    pass
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
    return codes


def test_unauthenticated_oversized_requests_do_not_grow_memory(cp: tuple[CpProcess, int]) -> None:
    started, xds_port = cp
    before = rss_mb(started.proc.pid)
    big = send_unauthenticated(xds_port, 50 * 1024 * 1024, 25)  # past the server's 4 MB message bound
    under = send_unauthenticated(xds_port, 900 * 1024, 25)  # under every bound: refused by authentication
    after = rss_mb(started.proc.pid)
    assert set(big) == {grpc.StatusCode.RESOURCE_EXHAUSTED}, big
    assert grpc.StatusCode.OK not in under, under
    assert after - before < 150, f"RSS grew from {before:.0f} MB to {after:.0f} MB"
    assert started.proc.poll() is None


def test_silent_ads_streams_and_slow_rest_clients_are_closed(cp: tuple[CpProcess, int]) -> None:
    started, xds_port = cp
    api_port = int(started.api.rsplit(":", 1)[1])
    slow = []
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", api_port), timeout=5)
        s.sendall(b"GET /meshes HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        slow.append(s)
    silent_tcp = [socket.create_connection(("127.0.0.1", xds_port), timeout=5) for _ in range(20)]
    began = time.monotonic()
    with grpc.insecure_channel(f"127.0.0.1:{xds_port}") as channel:
        call = channel.stream_stream(
            METHOD,
            request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
            response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
        )
        quiet = threading.Event()  # the request iterators send nothing until the test ends
        streams = [call(_silent(quiet), timeout=30) for _ in range(100)]
        codes = []
        try:
            for stream in streams:
                try:
                    for _ in stream:
                        pass
                except grpc.RpcError as e:
                    codes.append(e.code())
        finally:
            quiet.set()
    assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * 100
    assert time.monotonic() - began < 10, "silent ADS streams were closed after the 1 s first-message timeout"

    def closed(s: socket.socket) -> bool:
        s.settimeout(0.05)
        try:
            return s.recv(1024) == b""
        except TimeoutError:
            return False
        except ConnectionError:
            return True

    wait_until(lambda: all(closed(s) for s in slow), timeout=15, what="slow REST clients disconnected")
    wait_until(lambda: all(closed(s) for s in silent_tcp), timeout=15, what="silent ADS connections closed")
    assert time.monotonic() - began < 25
    for s in slow + silent_tcp:
        s.close()
    assert httpx.get(started.diag + "/ready", timeout=2).status_code == 200


def _silent(quiet: threading.Event) -> Iterator[discovery_pb2.DiscoveryRequest]:
    quiet.wait(30)
    yield from ()


@pytest.mark.parametrize(
    ("host", "mode", "tls"),
    [("127.0.0.1", None, False), ("0.0.0.0", None, True), ("10.1.2.3", "off", False), ("127.0.0.2", "on", True)],
)
def test_xds_tls_defaults_on_for_non_loopback_binds(host: str, mode: str | None, tls: bool, tmp_path: Path) -> None:
    config = load_config({"xds_host": host, "xds_tls": mode, "data_dir": str(tmp_path)}, {}, None)
    assert config.xds_tls_enabled is tls


def test_xds_tls_pair_goes_together(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="xds_tls_key"):
        load_config({"xds_tls_cert": str(cert), "data_dir": str(tmp_path)}, {}, None)
