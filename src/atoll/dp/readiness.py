"""The agent's own readiness endpoint: ``GET /ready`` -> 200 when the proxy can take traffic, else 503.

A tiny HTTP/1.1 server on ``asyncio.start_server`` (one request per connection, ``Connection: close``).
``is_ready`` is an async callable asked on every request; the agent passes one that is true once the
supervisor saw Envoy ready with its initial config *and* Envoy's admin ``/ready`` still answers 200
(so a draining or restarting Envoy reads as unready at once). ``start_server`` returns once the
socket listens (the agent binds it before it contacts the CP, so a busy port fails fast);
``serve`` binds and serves until cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("atoll.dp")

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable", 400: "Bad Request"}


async def start_server(host: str, port: int, is_ready: Callable[[], Awaitable[bool]]) -> asyncio.Server:
    """Bind ``host:port`` (port 0: any) and serve ``GET /ready``; the caller closes the server."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await _answer(reader, is_ready)
            data = body.encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
                f"Content-Type: text/plain\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + data)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port)
    log.info("readiness endpoint on http://%s:%d/ready", host, bound_port(server))
    return server


def bound_port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


async def serve(host: str, port: int, is_ready: Callable[[], Awaitable[bool]]) -> None:
    """Serve ``GET /ready`` on ``host:port`` until cancelled."""
    server = await start_server(host, port, is_ready)
    async with server:
        await server.serve_forever()


async def _answer(reader: asyncio.StreamReader, is_ready: Callable[[], Awaitable[bool]]) -> tuple[int, str]:
    request_line = await asyncio.wait_for(reader.readline(), 5.0)
    while True:  # skip the headers
        line = await asyncio.wait_for(reader.readline(), 5.0)
        if line in (b"\r\n", b"\n", b""):
            break
    parts = request_line.decode("latin-1").split()
    if len(parts) < 2:
        return 400, "bad request\n"
    method, target = parts[0], parts[1].split("?", 1)[0]
    if target != "/ready":
        return 404, "not found\n"
    if method != "GET":
        return 405, "method not allowed\n"
    if await is_ready():
        return 200, "ready\n"
    return 503, "not ready\n"
