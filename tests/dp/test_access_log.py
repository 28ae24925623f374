"""The agent's access-log streamer: FIFO entries written as Envoy writes them reach a TCP collector."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

from atoll.dp.access_log import AccessLogStreamer, parse_entry
from tests.helpers import await_until, free_port


def test_parse_entry() -> None:
    assert parse_entry(b'{"address": "h:1", "message": "text line\\n"}\n') == ("h:1", b"text line\n")
    assert parse_entry(b'{"address": "h:1", "message": "no newline"}') == ("h:1", b"no newline\n")
    assert parse_entry(b'{"address": "h:1", "message": {"a": 1}}\n') == ("h:1", b'{"a":1}\n')
    assert parse_entry(b"not json\n") is None
    assert parse_entry(b'{"message": "x"}\n') is None
    assert parse_entry(b'["h:1", "x"]\n') is None


async def test_streamer_forwards_lines_and_survives_a_dead_destination(tmp_path: Path) -> None:
    received: list[bytes] = []

    async def collect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            received.append(line)
        writer.close()

    server = await asyncio.start_server(collect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipe = tmp_path / "al.pipe"
    pipe.write_text("a stale regular file")
    streamer = AccessLogStreamer(str(pipe))
    streamer.open()
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    task = asyncio.create_task(streamer.run())
    try:
        # as Envoy does: open for writing (does not block: the streamer holds the FIFO open), append lines
        fd = os.open(pipe, os.O_WRONLY | os.O_APPEND)
        entries = [
            {"address": f"127.0.0.1:{free_port()}", "message": "lost: nobody listens\n"},
            {"address": f"127.0.0.1:{port}", "message": "first line\n"},
            {"address": f"127.0.0.1:{port}", "message": {"status": 200}},
        ]
        os.write(fd, b"garbage\n" + b"".join(json.dumps(e).encode() + b"\n" for e in entries))
        os.close(fd)
        await await_until(lambda: len(received) >= 2, timeout=5, what="two lines at the collector")
        assert received == [b"first line\n", b'{"status":200}\n']
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        streamer.close()
        server.close()
        await server.wait_closed()
    assert not pipe.exists()
