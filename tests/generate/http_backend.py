"""A threaded HTTP/1.1 application on loopback for the real-Envoy traffic tests.

``serve_http(answer)`` starts it on a free port: every GET is answered with ``answer(path)``'s
status and body, one write per response (``serve_http_headers``: ``answer(path, headers)``, for
tests that check what reached the application). The caller shuts it down (``shutdown``,
``server_close``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.helpers import free_port


def serve_http(answer: Callable[[str], tuple[int, bytes]]) -> ThreadingHTTPServer:
    return serve_http_headers(lambda path, _headers: answer(path))


def serve_http_headers(answer: Callable[[str, Mapping[str, str]], tuple[int, bytes]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = -1  # one write per response (pitfall 11)
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            status, body = answer(self.path, {k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
