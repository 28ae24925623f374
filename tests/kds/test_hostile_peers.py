"""Global's KDS port against peers that never authenticate: oversized metadata is refused by the
transport, garbage bytes are dropped, the zones keep syncing, and global's memory stays bounded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path

import grpc

from atoll.kds.server import GLOBAL_TO_ZONE, SERVICE
from tests.helpers import await_until
from tests.kds.conftest import Federation
from tests.kds.data import mesh


def rss_mb() -> float:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_oversized_metadata_and_garbage_are_refused_and_zones_keep_syncing(federation: Federation) -> None:
    g = federation
    await g.start_global()
    z = await g.start_zone("zone-1")
    before = rss_mb()
    await await_until(lambda: _true(len(g.tokens.calls) >= 2), what="the zone's two streams authenticated")
    authenticated = len(g.tokens.calls)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{g.port}") as channel:
        for _ in range(25):
            call = channel.stream_stream(f"/{SERVICE}/{GLOBAL_TO_ZONE}")(
                metadata=(
                    ("atoll-zone", "zone-1"),
                    ("atoll-instance", "intruder"),
                    ("authorization", "Bearer " + "t" * 256 * 1024),
                )
            )
            with contextlib.suppress(grpc.aio.AioRpcError):
                await call.read()
            code = await call.code()
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, code
    assert len(g.tokens.calls) == authenticated, "oversized metadata never reached authentication"
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", g.port), timeout=2) as s:
            s.sendall(os.urandom(64 * 1024))
    assert rss_mb() - before < 100
    await g.global_store.create(mesh("after-garbage"))
    await await_until(lambda: _has_mesh(z.store, "after-garbage"), timeout=10, what="the zone still syncs from global")


async def _has_mesh(store: object, name: str) -> bool:
    from atoll.errors import NotFound

    try:
        await store.get("Mesh", name)  # type: ignore[attr-defined]
    except NotFound:
        return False
    return True


async def _true(value: bool) -> bool:
    return value


async def test_a_silent_authenticated_stream_is_closed_after_the_first_message_timeout(
    federation: Federation,
) -> None:
    g = federation
    kds = await g.start_global()
    kds.servicer.first_message_timeout = 0.5
    async with grpc.aio.insecure_channel(f"127.0.0.1:{g.port}") as channel:
        call = channel.stream_stream(f"/{SERVICE}/{GLOBAL_TO_ZONE}")(
            metadata=(("atoll-zone", "zone-9"), ("atoll-instance", "i-1"), ("authorization", "Bearer token-zone-9"))
        )
        async with asyncio.timeout(5):
            code = await call.code()
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "no message within 0.5s" in await call.details()
    assert not kds.registry.online("zone-9"), "the silent stream released its zone"
