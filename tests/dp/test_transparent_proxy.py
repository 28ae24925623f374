"""`atoll dp install|uninstall transparent-proxy`: flag validation, the rules, and install/uninstall in
a throw-away network namespace (root only): twice is once, uninstall restores what was there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from atoll.cli.main import cli
from atoll.dp import transparent_proxy as tp
from tests.e2e.netns import available

WHY_NOT = available() or (None if shutil.which("iptables-nft") else "needs iptables-nft (apt-get install iptables)")


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["dp", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--exclude-inbound-ports", "22,0"], "--exclude-inbound-ports': 0 is not a port (1..65535)"),
        (["--exclude-outbound-ports", "80,http"], '--exclude-outbound-ports\': "http" is not a port number'),
        (["--exclude-outbound-ips", "10.0.0.0/33"], '"10.0.0.0/33" is not an IP address or CIDR'),
        (["--exclude-outbound-ips", "fd00::/8"], '"fd00::/8" is IPv6; only IPv4 is redirected'),
        (["--redirect-outbound-port", "70000"], "--redirect-outbound-port"),
        (["--redirect-inbound-port", "15001"], "the capture ports must differ"),
        (["--uid", "no-such-user-here"], 'no user named "no-such-user-here"'),
    ],
)
def test_bad_flags_are_refused_by_name(args: list[str], message: str) -> None:
    code, output = _run("install", "transparent-proxy", "--dry-run", *args)
    assert code == 2, output
    assert message in output


def test_dry_run_prints_the_rules_and_exclusions() -> None:
    code, output = _run(
        "install",
        "transparent-proxy",
        "--dry-run",
        "--uid",
        "5678",
        "--exclude-inbound-ports",
        "22",
        "--exclude-outbound-ports",
        "3306",
        "--exclude-outbound-ips",
        "10.0.0.0/8,192.168.1.7",
    )
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    assert "-A ATOLL_INBOUND -p tcp --dport 22 -j RETURN" in lines
    assert "-A ATOLL_OUTBOUND -p tcp --dport 3306 -j RETURN" in lines
    assert "-A ATOLL_OUTBOUND -d 10.0.0.0/8 -j RETURN" in lines
    assert "-A ATOLL_OUTBOUND -d 192.168.1.7/32 -j RETURN" in lines
    assert "-A ATOLL_OUTBOUND -m owner --uid-owner 5678 -j RETURN" in lines
    assert "-A ATOLL_OUTBOUND_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in lines
    assert "-A ATOLL_INBOUND_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in lines
    assert "-A ATOLL_OUTBOUND -p udp --dport 53 -j REDIRECT --to-ports 15053" in lines
    # the proxy's own DNS queries are exempt, and come before the redirect
    assert lines.index("-A ATOLL_OUTBOUND -p udp --dport 53 -m owner --uid-owner 5678 -j RETURN") < lines.index(
        "-A ATOLL_OUTBOUND -p udp --dport 53 -j REDIRECT --to-ports 15053"
    )
    # exclusions come before the catch-all redirect
    assert lines.index("-A ATOLL_OUTBOUND -d 10.0.0.0/8 -j RETURN") < lines.index(
        "-A ATOLL_OUTBOUND -p tcp -j ATOLL_OUTBOUND_REDIRECT"
    )


def test_no_redirect_dns_leaves_port_53_alone() -> None:
    code, output = _run("install", "transparent-proxy", "--dry-run", "--no-redirect-dns", "--uid", "0")
    assert code == 0, output
    assert "--dport 53" not in output


def test_default_uid_is_the_sudo_user_or_the_caller() -> None:
    assert tp.default_uid({"SUDO_UID": "1234"}) == 1234
    assert tp.default_uid({}) == os.getuid()


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"atoll-tp-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _in(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *args], capture_output=True, text=True, timeout=60)


def _dump(ns: str) -> str:
    done = _in(ns, "iptables-nft-save")
    assert done.returncode == 0, done.stderr
    return "\n".join(line for line in done.stdout.splitlines() if not line.startswith("#"))


def _atoll(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _in(ns, sys.executable, "-m", "atoll.cli.main", "dp", *args)


@pytest.mark.skipif(WHY_NOT is not None, reason=f"iptables in a network namespace: {WHY_NOT}")
def test_install_twice_is_once_and_uninstall_restores_the_namespace(netns: str) -> None:
    # someone else's rules, in the chains the transparent proxy hooks into
    for rule in (
        ["-t", "nat", "-A", "OUTPUT", "-d", "10.9.9.9/32", "-p", "tcp", "-j", "RETURN"],
        ["-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "2222", "-j", "REDIRECT", "--to-ports", "22"],
        ["-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"],
    ):
        done = _in(netns, "iptables-nft", *rule)
        assert done.returncode == 0, done.stderr
    before = _dump(netns)

    first = _atoll(netns, "install", "transparent-proxy", "--uid", "0", "--exclude-inbound-ports", "22")
    assert first.returncode == 0, first.stderr
    once = _dump(netns)
    assert once != before
    assert "-A OUTPUT -j ATOLL_OUTBOUND" in once and "-A PREROUTING -p tcp -j ATOLL_INBOUND" in once
    assert "--to-ports 15001" in once and "--to-ports 15006" in once and "--to-ports 15053" in once

    second = _atoll(netns, "install", "transparent-proxy", "--uid", "0", "--exclude-inbound-ports", "22")
    assert second.returncode == 0, second.stderr
    assert _dump(netns) == once

    removed = _atoll(netns, "uninstall", "transparent-proxy")
    assert removed.returncode == 0, removed.stderr
    assert "transparent proxy removed" in removed.stdout
    assert _dump(netns) == before

    again = _atoll(netns, "uninstall", "transparent-proxy")
    assert again.returncode == 0, again.stderr
    assert "was not installed" in again.stdout
    assert _dump(netns) == before


@pytest.mark.skipif(WHY_NOT is not None, reason=f"iptables in a network namespace: {WHY_NOT}")
def test_uninstall_in_a_namespace_without_a_nat_table_leaves_none(netns: str) -> None:
    assert _dump(netns) == ""
    for _ in range(2):
        done = _atoll(netns, "install", "transparent-proxy", "--uid", "0")
        assert done.returncode == 0, done.stderr
    assert "atoll-created-the-nat-table" in _dump(netns)
    removed = _atoll(netns, "uninstall", "transparent-proxy")
    assert removed.returncode == 0, removed.stderr
    assert _dump(netns) == ""
    assert _in(netns, "nft", "list", "tables").stdout.strip() == ""
