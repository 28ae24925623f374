"""Tcp access-log backends: the agent reads its proxy's access-log pipe and sends each entry over TCP.

Envoy has no plain-TCP access logger, so (as Kuma's data plane does) the control plane points every
``Tcp`` backend of a MeshAccessLog at one file per proxy, ``access_log_pipe(mesh, name)``, with a
JSON format wrapping each entry: ``{"address": "host:port", "message": <text or object>}``, one per
line. ``AccessLogStreamer.open`` makes that path a FIFO before Envoy starts (a stale file or FIFO is
replaced) and opens it read-write, so Envoy's open for writing never blocks and the reader never
sees end-of-file between writers. ``run`` reads lines and hands each message to a sender per
address: a text message is sent as written (it ends with a newline), an object as one JSON line.

A destination that cannot be reached, or fails while sending, loses that entry (logged, no retry),
and the next entry to it connects again: access logs must never back up into Envoy (a full pipe
would stall its logging thread). ``close`` removes the FIFO if it is still the one it made.

The path is fixed per mesh and proxy name (the control plane does not know the agent's work dir):
an agent killed with SIGKILL leaves its FIFO behind; the next agent of that proxy replaces it, but
an Envoy started without an agent on config naming that path would wait forever opening it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from contextlib import suppress
from typing import Any

__all__ = ["AccessLogStreamer", "parse_entry"]

log = logging.getLogger("atoll.dp.access_log")

CONNECT_TIMEOUT = 2.0
LINE_LIMIT = 1 << 20


def parse_entry(line: bytes) -> tuple[str, bytes] | None:
    """(address, bytes to send) of one line Envoy wrote to the pipe; None when it is not an entry."""
    try:
        entry: Any = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("address"), str) or "message" not in entry:
        return None
    message = entry["message"]
    text = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
    if not text.endswith("\n"):
        text += "\n"
    return entry["address"], text.encode()


class AccessLogStreamer:
    """Owns the FIFO at ``path`` and forwards what Envoy writes to it (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._inode: int | None = None
        self._writers: dict[str, asyncio.StreamWriter] = {}

    def open(self) -> None:
        """Create the FIFO (replacing whatever is at ``path``) and open it; call before Envoy starts."""
        with suppress(FileNotFoundError):
            os.unlink(self.path)
        os.mkfifo(self.path, 0o600)
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        self._inode = os.fstat(self._fd).st_ino

    async def run(self) -> None:
        """Forward entries until cancelled."""
        if self._fd is None:
            self.open()
        assert self._fd is not None
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(os.dup(self._fd), "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # a line over the limit: dropped (readline skips past it)
                    log.warning("access-log pipe %s: an entry over %d bytes dropped", self.path, LINE_LIMIT)
                    continue
                if not line:
                    break
                entry = parse_entry(line)
                if entry is None:
                    log.warning("access-log pipe %s: not an entry: %r", self.path, line[:200])
                    continue
                await self._send(*entry)
        finally:
            transport.close()
            await self._close_writers()

    async def _send(self, address: str, data: bytes) -> None:
        try:
            writer = self._writers.get(address)
            if writer is None:
                host, _, port = address.rpartition(":")
                _, opened = await asyncio.wait_for(asyncio.open_connection(host, int(port)), CONNECT_TIMEOUT)
                writer = self._writers[address] = opened
            writer.write(data)
            await writer.drain()
        except (OSError, ValueError, TimeoutError) as e:
            log.warning("access log to %s dropped: %s", address, e)
            dead = self._writers.pop(address, None)
            if dead is not None:
                dead.close()

    async def _close_writers(self) -> None:
        for writer in self._writers.values():
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()
        self._writers.clear()

    def close(self) -> None:
        """Close the FIFO and remove it if ``path`` is still the one ``open`` made."""
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        with suppress(FileNotFoundError):
            st = os.stat(self.path)
            if stat.S_ISFIFO(st.st_mode) and st.st_ino == self._inode:
                os.unlink(self.path)
