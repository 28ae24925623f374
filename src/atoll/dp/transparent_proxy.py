"""The transparent proxy's traffic redirection: iptables rules (nft backend) in chains of their own.

``TproxyConfig`` holds the validated settings (ports, uid, exclusions); ``ruleset(config)`` renders
them as an ``iptables-restore`` document of the ``nat`` table, the same text ``--dry-run`` prints.
``install``/``uninstall`` apply and remove it with ``iptables-nft`` in the current network namespace
(run them under ``ip netns exec NS`` for another one).

What is redirected (IPv4; the ``nat`` table):

- inbound: every TCP connection arriving (``PREROUTING``) goes to the inbound capture port (15006),
  except to ``exclude_inbound_ports``;
- DNS: UDP to port 53 sent by anyone but the proxy's uid goes to the DNS port (15053), where Envoy's
  DNS filter answers ``.mesh`` names and forwards the rest; the proxy's own queries (its forwarding)
  go out untouched;
- outbound: every TCP connection leaving (``OUTPUT``) goes to the outbound capture port (15001),
  except the proxy's own (by uid), loopback traffic of the applications, traffic to 127.0.0.1, to
  ``exclude_outbound_ports`` and to ``exclude_outbound_ips``. As in Kuma, the proxy connecting to a
  non-127.0.0.1 address over loopback (a service calling itself through its own address) is sent to
  the inbound capture port, so that its own inbound policies still apply; its inbound passthrough
  (from ``127.0.0.6``) is let through.

Everything lives in four chains named ``ATOLL_*`` plus one jump each from ``PREROUTING`` and
``OUTPUT``; when the namespace had no ``nat`` table, ``install`` creates it and says so in a comment
on the ``OUTPUT`` jump, and ``uninstall`` deletes it again if nothing else was added to it.
Guarantees: ``install`` twice leaves the same rules as once (it removes its chains and jumps
first); ``uninstall`` removes exactly the chains and jumps ``install`` added and leaves every
other rule as it was; removing what is not there is not an error.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from atoll.addresses import INBOUND_PASSTHROUGH_SOURCE, TPROXY_DNS_PORT
from atoll.errors import AtollError

__all__ = [
    "CHAINS",
    "DEFAULT_DNS_PORT",
    "DEFAULT_INBOUND_PORT",
    "DEFAULT_OUTBOUND_PORT",
    "TproxyConfig",
    "TproxyError",
    "default_uid",
    "install",
    "installed",
    "parse_cidrs",
    "parse_ports",
    "ruleset",
    "uninstall",
]

DEFAULT_OUTBOUND_PORT = 15001
DEFAULT_INBOUND_PORT = 15006
DEFAULT_DNS_PORT = TPROXY_DNS_PORT

INBOUND = "ATOLL_INBOUND"
INBOUND_REDIRECT = "ATOLL_INBOUND_REDIRECT"
OUTBOUND = "ATOLL_OUTBOUND"
OUTBOUND_REDIRECT = "ATOLL_OUTBOUND_REDIRECT"
CHAINS = (INBOUND, INBOUND_REDIRECT, OUTBOUND, OUTBOUND_REDIRECT)
_JUMPS = (("PREROUTING", ["-p", "tcp", "-j", INBOUND]), ("OUTPUT", ["-j", OUTBOUND]))
_CREATED = "atoll-created-the-nat-table"
"""The comment on the OUTPUT jump when ``install`` created the ``nat`` table: uninstall removes it too."""
_MARKED_JUMP = ("OUTPUT", ["-m", "comment", "--comment", _CREATED, "-j", OUTBOUND])
_IPTABLES = "iptables-nft"


class TproxyError(AtollError):
    """The rules could not be applied or removed (iptables missing or failing)."""


@dataclass(frozen=True, slots=True)
class TproxyConfig:
    uid: int
    outbound_port: int = DEFAULT_OUTBOUND_PORT
    inbound_port: int = DEFAULT_INBOUND_PORT
    dns_port: int = DEFAULT_DNS_PORT
    redirect_dns: bool = True
    exclude_inbound_ports: tuple[int, ...] = ()
    exclude_outbound_ports: tuple[int, ...] = ()
    exclude_outbound_ips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("outbound_port", "inbound_port", "dns_port"):
            _check_port(getattr(self, name), name)
        if not 0 <= self.uid <= 2**32 - 2:
            raise ValueError(f"uid: {self.uid} is not a valid user id")
        ports = {"outbound_port": self.outbound_port, "inbound_port": self.inbound_port}
        if self.redirect_dns:
            ports["dns_port"] = self.dns_port
        if len(set(ports.values())) != len(ports):
            raise ValueError(f"the capture ports must differ: {ports}")


def _check_port(port: int, what: str) -> None:
    if not 1 <= port <= 65535:
        raise ValueError(f"{_prefix(what)}{port} is not a port (1..65535)")


def _prefix(what: str) -> str:
    return f"{what}: " if what else ""


def parse_ports(text: str, what: str) -> tuple[int, ...]:
    """``"22,8080"`` -> ``(22, 8080)``; ``ValueError`` naming ``what`` and the bad item."""
    out: list[int] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        if not item.isdigit():
            raise ValueError(f'{_prefix(what)}"{item}" is not a port number')
        _check_port(int(item), what)
        out.append(int(item))
    return tuple(sorted(set(out)))


def parse_cidrs(text: str, what: str) -> tuple[str, ...]:
    """``"10.0.0.0/8,192.168.1.1"`` -> normalized IPv4 networks; ``ValueError`` on a bad item."""
    out: list[str] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        try:
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f'{_prefix(what)}"{item}" is not an IP address or CIDR') from None
        if net.version != 4:
            raise ValueError(f'{_prefix(what)}"{item}" is IPv6; only IPv4 is redirected')
        out.append(str(net))
    return tuple(dict.fromkeys(out))


def default_uid(env: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """The uid exempt by default: the user who runs the install (``SUDO_UID`` when run through sudo),
    the one expected to run ``atoll dp run``."""
    sudo = env.get("SUDO_UID", "")
    return int(sudo) if sudo.isdigit() else os.getuid()


def ruleset(config: TproxyConfig, *, creates_table: bool = False) -> str:
    """The ``iptables-restore`` document (``nat`` table) that ``install`` applies (``creates_table``:
    the namespace has no ``nat`` table yet, which the OUTPUT jump's comment records)."""
    uid = str(config.uid)
    rules: list[list[str]] = [
        [INBOUND_REDIRECT, "-p", "tcp", "-j", "REDIRECT", "--to-ports", str(config.inbound_port)],
        [OUTBOUND_REDIRECT, "-p", "tcp", "-j", "REDIRECT", "--to-ports", str(config.outbound_port)],
    ]
    rules += [[INBOUND, "-p", "tcp", "--dport", str(p), "-j", "RETURN"] for p in config.exclude_inbound_ports]
    rules.append([INBOUND, "-p", "tcp", "-j", INBOUND_REDIRECT])
    if config.redirect_dns:
        rules += [
            [OUTBOUND, "-p", "udp", "--dport", "53", "-m", "owner", "--uid-owner", uid, "-j", "RETURN"],
            [OUTBOUND, "-p", "udp", "--dport", "53", "-j", "REDIRECT", "--to-ports", str(config.dns_port)],
        ]
    rules += [
        [OUTBOUND, "-p", "udp", "-j", "RETURN"],
        [OUTBOUND, "-o", "lo", "-s", INBOUND_PASSTHROUGH_SOURCE + "/32", "-j", "RETURN"],
        [OUTBOUND, "-o", "lo", "!", "-d", "127.0.0.1/32", "-m", "owner", "--uid-owner", uid, "-j", INBOUND_REDIRECT],
        [OUTBOUND, "-o", "lo", "-j", "RETURN"],
        [OUTBOUND, "-m", "owner", "--uid-owner", uid, "-j", "RETURN"],
        [OUTBOUND, "-d", "127.0.0.1/32", "-j", "RETURN"],
    ]
    rules += [[OUTBOUND, "-p", "tcp", "--dport", str(p), "-j", "RETURN"] for p in config.exclude_outbound_ports]
    rules += [[OUTBOUND, "-d", net, "-j", "RETURN"] for net in config.exclude_outbound_ips]
    rules.append([OUTBOUND, "-p", "tcp", "-j", OUTBOUND_REDIRECT])
    jumps = (_JUMPS[0], _MARKED_JUMP) if creates_table else _JUMPS
    rules += [[chain, *args] for chain, args in jumps]
    lines = ["*nat", *(f":{c} - [0:0]" for c in CHAINS), *("-A " + " ".join(r) for r in rules), "COMMIT"]
    return "\n".join(lines) + "\n"


def _iptables(
    args: Iterable[str], *, stdin: str | None = None, binary: str = _IPTABLES
) -> subprocess.CompletedProcess[str]:
    path = shutil.which(binary)
    if path is None:
        raise TproxyError(f"{binary} is not installed (Debian: apt-get install iptables nftables)")
    return subprocess.run([path, *args], input=stdin, capture_output=True, text=True, check=False)


def installed() -> bool:
    """Whether this namespace has the ``ATOLL_*`` chains."""
    listing = _iptables(["-t", "nat", "-S"])
    if listing.returncode != 0:
        raise TproxyError(f"iptables -t nat -S failed: {listing.stderr.strip()}")
    return any(line.split()[:2] == ["-N", INBOUND] for line in listing.stdout.splitlines())


def uninstall() -> bool:
    """Remove the jumps and the ``ATOLL_*`` chains; True if there was something to remove."""
    if not _has_nat_table():
        return False
    removed = created = False
    for chain, args in (*_JUMPS, _MARKED_JUMP):
        while _iptables(["-t", "nat", "-D", chain, *args]).returncode == 0:
            removed = True
            created = created or args is _MARKED_JUMP[1]
    present = _present_chains()
    for chain in present:
        _checked(["-t", "nat", "-F", chain])
    for chain in present:
        _checked(["-t", "nat", "-X", chain])
    if created and _nat_is_empty():
        _nft(["delete", "table", "ip", "nat"])
    return removed or bool(present)


def install(config: TproxyConfig) -> None:
    """Apply ``ruleset(config)`` (replacing an earlier install's rules, so twice is the same as once)."""
    uninstall()
    text = ruleset(config, creates_table=not _has_nat_table())
    done = _iptables(["--noflush"], stdin=text, binary=f"{_IPTABLES}-restore")
    if done.returncode != 0:
        uninstall()
        raise TproxyError(f"iptables-nft-restore refused the rules: {done.stderr.strip()}")


def _nft(args: list[str]) -> str:
    done = _iptables(args, binary="nft")
    if done.returncode != 0:
        raise TproxyError(f"nft {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _has_nat_table() -> bool:
    """Whether the namespace has an IPv4 ``nat`` table (listing with iptables would not tell: it
    shows the built-in chains of a table that does not exist)."""
    return any(line.split() == ["table", "ip", "nat"] for line in _nft(["list", "tables"]).splitlines())


def _nat_is_empty() -> bool:
    """No rule and no chain of its own, and every built-in chain's policy ACCEPT: as if never made."""
    listing = _iptables(["-t", "nat", "-S"]).stdout.splitlines()
    return all(line.startswith("-P ") and line.endswith(" ACCEPT") for line in listing)


def _present_chains() -> list[str]:
    listing = _iptables(["-t", "nat", "-S"])
    if listing.returncode != 0:
        raise TproxyError(f"iptables -t nat -S failed: {listing.stderr.strip()}")
    names = {line.split()[1] for line in listing.stdout.splitlines() if line.startswith("-N ")}
    return [c for c in CHAINS if c in names]


def _checked(args: list[str]) -> None:
    done = _iptables(args)
    if done.returncode != 0:
        raise TproxyError(f"iptables {' '.join(args)} failed: {done.stderr.strip()}")
