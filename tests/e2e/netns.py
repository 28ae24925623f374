"""A zone on its own network host: a Linux network namespace joined to this one by a veth pair.

``ZoneHost`` creates namespace ``atoll-<id>`` with a veth pair (``10.213.N.1`` here, ``10.213.N.2`` in the
namespace, a /30 made only for the test), runs processes in it (``ip netns exec``), cuts and restores
the link, and deletes everything on ``close()`` (deleting the namespace removes its end of the veth, and
with it the pair). Needs root and iproute2; ``available()`` says whether this machine can.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
body = ("backend=" + sys.argv[2]).encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H); s.daemon_threads = True; s.serve_forever()
"""


def available() -> str | None:
    """None if network namespaces can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (the ip command)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"ip netns does not work here: {probe.stderr.strip()}"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class ZoneHost:
    def __init__(self, tag: str) -> None:
        n = os.getpid() % 250 + 1
        self.ns = f"atoll-{tag}-{os.getpid()}"
        self.outer_dev, self.inner_dev = f"az{n}o", f"az{n}i"
        self.outer_ip, self.inner_ip = f"10.213.{n}.1", f"10.213.{n}.2"
        self.procs: list[subprocess.Popen[bytes]] = []
        _ip("netns", "add", self.ns)
        try:
            _ip("link", "add", self.outer_dev, "type", "veth", "peer", "name", self.inner_dev)
            _ip("link", "set", self.inner_dev, "netns", self.ns)
            _ip("addr", "add", f"{self.outer_ip}/30", "dev", self.outer_dev)
            _ip("link", "set", self.outer_dev, "up")
            _ip("-n", self.ns, "addr", "add", f"{self.inner_ip}/30", "dev", self.inner_dev)
            _ip("-n", self.ns, "link", "set", self.inner_dev, "up")
            _ip("-n", self.ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns]

    def app(self, port: int, label: str, log: Path) -> subprocess.Popen[bytes]:
        """An HTTP backend answering ``backend=<label>`` on the namespace's 127.0.0.1:port."""
        with open(log, "ab") as f:
            p = subprocess.Popen(
                [*self.prefix, sys.executable, "-c", SERVER, str(port), label],
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(p)
        return p

    def cut(self) -> None:
        _ip("link", "set", self.outer_dev, "down")

    def restore(self) -> None:
        _ip("link", "set", self.outer_dev, "up")

    def close(self) -> None:
        from tests.helpers import stop_process

        for p in self.procs:
            stop_process(p)
        subprocess.run(["ip", "link", "del", self.outer_dev], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
