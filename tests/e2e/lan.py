"""Workloads on their own network namespaces joined by one LAN, for the transparent-proxy tests.

``Lan`` makes a bridge in a namespace of its own and joins this (root) namespace to it as
``10.216.P.1/24`` (P from the pid, so parallel test runs do not meet); ``Lan.workload(name)`` adds a
namespace at ``10.216.P.k`` with a default route through ``.1`` (VIPs need a route before iptables
sees them) and its own ``/etc/netns/<ns>/resolv.conf`` pointing at ``.1``, where ``TinyDns`` answers.
``ip netns exec`` mounts that file over ``/etc/resolv.conf`` for everything run in the namespace.
``TinyDns`` is the namespaces' upstream resolver: it answers A queries for the names it is given and
NXDOMAIN for the rest, and counts what it was asked. ``close()`` removes every namespace, link and
resolv.conf directory it made. Needs root, iproute2 and iptables-nft.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import threading
from pathlib import Path

from tests.e2e.netns import SERVER


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Workload:
    def __init__(self, lan: Lan, name: str, index: int) -> None:
        self.lan = lan
        self.ns = f"atoll-{name}-{os.getpid()}"
        self.ip = f"{lan.prefix}.{index}"
        self.procs: list[subprocess.Popen[bytes]] = []
        dev, peer = f"tw{lan.p}x{index}", f"tw{lan.p}y{index}"
        _ip("netns", "add", self.ns)
        lan.namespaces.append(self.ns)
        _ip("link", "add", dev, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", lan.ns)
        _ip("-n", lan.ns, "link", "set", peer, "master", "br0", "up")
        _ip("link", "set", dev, "netns", self.ns)
        _ip("-n", self.ns, "addr", "add", f"{self.ip}/24", "dev", dev)
        _ip("-n", self.ns, "link", "set", dev, "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")
        _ip("-n", self.ns, "route", "add", "default", "via", lan.gateway)
        etc = Path("/etc/netns") / self.ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(f"nameserver {lan.gateway}\noptions timeout:2 attempts:2\n")

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=timeout)

    def as_app(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``args`` in the namespace as user nobody (not the proxy's uid: its traffic is captured)."""
        return self.run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *args, timeout=timeout)

    def curl(self, url: str) -> str:
        """The body the application gets for ``url``, or ``error: ...``."""
        done = self.as_app("curl", "-s", "-S", "-m", "5", url)
        return done.stdout if done.returncode == 0 else f"error: {done.returncode} {done.stderr.strip()}"

    def curl_many(self, url: str, n: int) -> list[str]:
        """The bodies of ``n`` requests to ``url`` made by one curl (one kept-alive connection), and
        ``error: ...`` last when curl failed."""
        done = self.as_app("curl", "-s", "-S", "-m", "60", "-w", "\\n", *([url] * n), timeout=90)
        errors = [f"error: {done.returncode} {done.stderr.strip()}"] if done.returncode else []
        return [line for line in done.stdout.splitlines() if line] + errors

    def dns(self, name: str, qtype: int) -> tuple[int, list[tuple[int, str]]]:
        """Ask the namespace's resolver (as the application) for ``name``: (rcode, [(ttl, address)])."""
        done = self.as_app("/usr/bin/python3", "-c", _DNS_CLIENT, self.lan.gateway, name, str(qtype))
        assert done.returncode == 0, done.stderr
        rcode, *answers = done.stdout.split()
        return int(rcode), [(int(a.split("/")[0]), a.split("/")[1]) for a in answers]

    def app(self, port: int, label: str, log: Path) -> None:
        """An HTTP server answering ``backend=<label>`` on the namespace's 127.0.0.1:port."""
        with open(log, "ab") as f:
            self.procs.append(
                subprocess.Popen(
                    [*self.prefix, "/usr/bin/python3", "-c", SERVER, str(port), label],
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def rules(self) -> str:
        done = self.run("iptables-nft-save")
        assert done.returncode == 0, done.stderr
        return "\n".join(line for line in done.stdout.splitlines() if not line.startswith("#"))


_DNS_CLIENT = """
import socket, struct, sys
server, name, qtype = sys.argv[1], sys.argv[2], int(sys.argv[3])
q = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0" + struct.pack("!HH", qtype, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5); s.sendto(q, (server, 53))
r = s.recv(4096)
rcode, an = r[3] & 15, struct.unpack("!H", r[6:8])[0]
i = len(q)
out = [str(rcode)]
for _ in range(an):
    i += 2 if r[i] & 0xC0 == 0xC0 else r.index(b"\\0", i) + 1 - i
    t, _c, ttl, n = struct.unpack("!HHIH", r[i:i + 10]); i += 10
    data = r[i:i + n]; i += n
    family = {1: socket.AF_INET, 28: socket.AF_INET6}.get(t)
    out.append(f"{ttl}/" + (socket.inet_ntop(family, data) if family else "?"))
print(" ".join(out))
"""


class Lan:
    def __init__(self) -> None:
        self.p = os.getpid() % 200 + 20
        self.prefix = f"10.216.{self.p}"
        self.gateway = f"{self.prefix}.1"
        self.ns = f"atoll-lan-{os.getpid()}"
        self.namespaces: list[str] = [self.ns]
        self.workloads: list[Workload] = []
        self.root_dev = f"tw{self.p}r"
        try:
            _ip("netns", "add", self.ns)
            _ip("-n", self.ns, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.ns, "link", "set", "br0", "up")
            _ip("link", "add", self.root_dev, "type", "veth", "peer", "name", f"tw{self.p}s")
            _ip("link", "set", f"tw{self.p}s", "netns", self.ns)
            _ip("-n", self.ns, "link", "set", f"tw{self.p}s", "master", "br0", "up")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.root_dev)
            _ip("link", "set", self.root_dev, "up")
        except BaseException:
            self.close()
            raise

    def workload(self, name: str) -> Workload:
        w = Workload(self, name, len(self.workloads) + 2)
        self.workloads.append(w)
        return w

    def close(self) -> None:
        from tests.helpers import stop_process

        for w in self.workloads:
            for p in w.procs:
                stop_process(p)
        subprocess.run(["ip", "link", "del", self.root_dev], capture_output=True)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)


class TinyDns:
    """A UDP DNS server on ``address:53``: A records from ``records`` (name -> IPv4), NXDOMAIN else."""

    def __init__(self, address: str, records: dict[str, str]) -> None:
        self.records = {k.rstrip(".").lower(): v for k, v in records.items()}
        self.asked: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(512)
            except OSError:
                return
            try:
                self.sock.sendto(self._answer(data), peer)
            except (OSError, ValueError, struct.error):
                continue

    def _answer(self, query: bytes) -> bytes:
        ident, _flags, _count = struct.unpack("!HHH", query[:6])
        labels, i = [], 12
        while query[i]:
            n = query[i]
            labels.append(query[i + 1 : i + 1 + n].decode().lower())
            i += n + 1
        qtype = struct.unpack("!H", query[i + 1 : i + 3])[0]
        question = query[12 : i + 5]
        name = ".".join(labels)
        self.asked.append(name)
        ip = self.records.get(name)
        if ip is None:
            return struct.pack("!HHHHHH", ident, 0x8183, 1, 0, 0, 0) + question
        if qtype != 1:  # not A: no answer, no error
            return struct.pack("!HHHHHH", ident, 0x8180, 1, 0, 0, 0) + question
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + socket.inet_aton(ip)
        return struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + answer

    def close(self) -> None:
        self.sock.close()
