"""`atoll dp install transparent-proxy` and `atoll dp uninstall transparent-proxy`.

Flags are validated here (ports 1..65535, IPv4 addresses/CIDRs, a user that exists) into a
``TproxyConfig``; the rules themselves are ``atoll.dp.transparent_proxy``'s. Exit codes: 0 done,
2 bad flag, 1 iptables missing or failing.
"""

from __future__ import annotations

import pwd
import sys

import click

from atoll.dp import transparent_proxy as tp

__all__ = ["install", "uninstall"]

_INSTALL_HELP = """Redirect this network namespace's traffic through the data plane proxy.

\b
Installs iptables rules (nft backend, table nat, chains ATOLL_*) so that applications need no proxy
configuration:
  - outbound TCP to any address -> Envoy's outbound capture port (--redirect-outbound-port, 15001);
  - inbound TCP -> Envoy's inbound capture port (--redirect-inbound-port, 15006);
  - DNS over UDP port 53 -> Envoy's DNS listener on 127.0.0.1:15053, which answers <service>.mesh
    (and VirtualOutbound names) with the VIP and forwards other names to the namespace's resolvers.
The proxy's own traffic (the --uid user's) is not redirected; neither is the applications' loopback
traffic. The Dataplane needs networking.transparentProxying with the same redirect ports
(redirectPortOutbound, redirectPortInbound); the VIPs need a route (a default route will do).

\b
--uid defaults to the user running this command (SUDO_UID when run through sudo): run
`atoll dp run` as that user and the applications as other users.

\b
Installing twice gives the same rules; `atoll dp uninstall transparent-proxy` removes them and
leaves the namespace's other rules as they were. Run it in the namespace of the workload:

\b
  ip netns exec app atoll dp install transparent-proxy --uid 5678
  atoll dp install transparent-proxy --uid kuma-dp --exclude-inbound-ports 22
  atoll dp install transparent-proxy --exclude-outbound-ips 10.0.0.0/8,169.254.169.254 --dry-run
"""


def _uid(ctx: click.Context, param: click.Parameter, value: str | None) -> int:
    if value is None:
        return tp.default_uid()
    if value.isdigit():
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        raise click.BadParameter(f'no user named "{value}"') from None


def _ports(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        return tp.parse_ports(value, "")
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _cidrs(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    try:
        return tp.parse_cidrs(value, "")
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


_PORT = click.IntRange(1, 65535)


@click.group(name="install")
def install() -> None:
    """Install host or network-namespace settings for the data plane."""


@click.group(name="uninstall")
def uninstall() -> None:
    """Remove what `atoll dp install` set up."""


@install.command(name="transparent-proxy", help=_INSTALL_HELP)
@click.option("--uid", callback=_uid, metavar="UID|USER", help="The proxy's user, exempt from redirection.")
@click.option("--redirect-outbound-port", type=_PORT, default=tp.DEFAULT_OUTBOUND_PORT, show_default=True)
@click.option("--redirect-inbound-port", type=_PORT, default=tp.DEFAULT_INBOUND_PORT, show_default=True)
@click.option("--no-redirect-dns", is_flag=True, help="Leave DNS queries alone (no <service>.mesh names).")
@click.option("--exclude-inbound-ports", default="", callback=_ports, metavar="P,P", help="Inbound ports not captured.")
@click.option(
    "--exclude-outbound-ports", default="", callback=_ports, metavar="P,P", help="Destination ports not captured."
)
@click.option(
    "--exclude-outbound-ips", default="", callback=_cidrs, metavar="CIDR,..", help="Destinations not captured."
)
@click.option("--dry-run", is_flag=True, help="Print the rules (iptables-restore format) and change nothing.")
def install_transparent_proxy(
    uid: int,
    redirect_outbound_port: int,
    redirect_inbound_port: int,
    no_redirect_dns: bool,
    exclude_inbound_ports: tuple[int, ...],
    exclude_outbound_ports: tuple[int, ...],
    exclude_outbound_ips: tuple[str, ...],
    dry_run: bool,
) -> None:
    try:
        config = tp.TproxyConfig(
            uid=uid,
            outbound_port=redirect_outbound_port,
            inbound_port=redirect_inbound_port,
            redirect_dns=not no_redirect_dns,
            exclude_inbound_ports=exclude_inbound_ports,
            exclude_outbound_ports=exclude_outbound_ports,
            exclude_outbound_ips=exclude_outbound_ips,
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if dry_run:
        click.echo(tp.ruleset(config), nl=False)
        return
    try:
        tp.install(config)
    except tp.TproxyError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    click.echo(
        f"transparent proxy installed (proxy uid {uid}; outbound -> {redirect_outbound_port}, "
        f"inbound -> {redirect_inbound_port}" + ("" if no_redirect_dns else f", DNS -> {tp.DEFAULT_DNS_PORT}") + ")"
    )


@uninstall.command(name="transparent-proxy")
def uninstall_transparent_proxy() -> None:
    """Remove the transparent proxy's iptables rules (chains ATOLL_* and their jumps).

    \b
    Other rules of the namespace stay as they were; with nothing installed it does nothing.
      ip netns exec app atoll dp uninstall transparent-proxy
    """
    try:
        removed = tp.uninstall()
    except tp.TproxyError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    click.echo("transparent proxy removed" if removed else "transparent proxy was not installed")
