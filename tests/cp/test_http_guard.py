"""The REST servers' protocol guard (``atoll.cp.http_guard``) with stand-in transports: a remote address
may hold only so many connections (loopback is exempt), a request must arrive in time, and a completed
request is not timed while the app answers."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from atoll.cp.http_guard import guarded_h11


class FakeTransport(asyncio.Transport):
    def __init__(self, peer: str) -> None:
        super().__init__()
        self.peer = peer
        self.closed = False
        self.written = b""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return (self.peer, 40000)
        if name == "sockname":
            return ("10.0.0.1", 5681)
        return default

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(3600)


def _protocols(request_timeout: float = 5.0, per_peer: int = 2) -> Any:
    config = uvicorn.Config(_app, lifespan="off", log_config=None)
    config.load()
    cls = guarded_h11(request_timeout, per_peer)
    state = ServerState()
    return lambda: cls(config=config, server_state=state, app_state={})


async def test_a_remote_address_holds_a_bounded_number_of_connections() -> None:
    make = _protocols(per_peer=2)
    remote = [FakeTransport("203.0.113.9") for _ in range(3)]
    protocols = [make() for _ in remote]
    for p, t in zip(protocols, remote, strict=True):
        p.connection_made(t)
    assert [t.closed for t in remote] == [False, False, True]
    other = FakeTransport("203.0.113.10")
    make().connection_made(other)
    assert not other.closed, "the limit is per address"
    local = [FakeTransport("127.0.0.1") for _ in range(5)]
    for t in local:
        make().connection_made(t)
    assert not any(t.closed for t in local), "loopback is exempt"
    protocols[0].connection_lost(None)
    again = FakeTransport("203.0.113.9")
    make().connection_made(again)
    assert not again.closed, "a closed connection frees its place"


async def test_an_unfinished_request_is_cut_and_a_finished_one_is_not() -> None:
    make = _protocols(request_timeout=0.2)
    slow, done = FakeTransport("203.0.113.9"), FakeTransport("203.0.113.11")
    p_slow, p_done = make(), make()
    p_slow.connection_made(slow)
    p_done.connection_made(done)
    p_slow.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")
    p_done.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # the app now takes its time
    deadline = asyncio.get_running_loop().time() + 5
    while not slow.closed:  # cut 0.2 s after it began; poll, do not sleep for it
        assert asyncio.get_running_loop().time() < deadline, "the unfinished request was never cut"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # an absence needs time to pass: well past the finished one's 0.2 s too
    assert not done.closed
    for task in list(p_done.tasks):
        task.cancel()
