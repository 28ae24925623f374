"""``atoll token``: issue and revoke dataplane and zone tokens through a control plane's REST API.

Each command builds the JSON body of ``POST /tokens/dataplane``, ``/tokens/zone`` or
``/tokens/revocations`` from its options and prints the token (only the token, so that
``atoll token dataplane ... > web.token`` makes a token file). The control plane validates every
field and names the bad one; these endpoints need an admin client (loopback, or ``ATOLL_TOKEN`` /
the context's token set to the CP's admin token). For an HTTPS API with a self-signed certificate,
point ``ATOLL_CACERT`` at the CP's ``<data_dir>/tls/api-cert.pem``.
"""

from __future__ import annotations

from typing import Any

import click

from atoll.api import paths
from atoll.cli.common import state
from atoll.errors import FieldError, InvalidInput


def parse_tags(pairs: tuple[str, ...]) -> dict[str, list[str]]:
    """``("kuma.io/service=web", "version=v1", "version=v2")`` -> ``{tag: [values]}``."""
    out: dict[str, list[str]] = {}
    errors: list[FieldError] = []
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key or not value:
            errors.append(FieldError("--tag", f'expected KEY=VALUE, got "{p}"'))
            continue
        values = out.setdefault(key, [])
        for v in value.split(","):
            if v and v not in values:
                values.append(v)
    if errors:
        raise InvalidInput(errors, title="invalid option")
    return out


def _given(**fields: Any) -> dict[str, Any]:
    """The fields of a request body that the options set (empty ones are left to the CP's defaults)."""
    return {k: v for k, v in fields.items() if v}


def _post(path: str, body: dict[str, Any]) -> dict[str, Any]:
    with state().client() as client:
        return client.post(path, body)


@click.group(
    name="token",
    epilog="""\b
Examples:
  atoll token dataplane --mesh default --name web-1 > web-1.token
  atoll token zone --zone east --scope ingress
  atoll token revoke --kind dataplane --token-file web-1.token""",
)
def token() -> None:
    """Issue and revoke dataplane and zone tokens (admin only)."""


@token.command(
    name="dataplane",
    epilog="""\b
Examples:
  atoll token dataplane --mesh default --name web-1 > web-1.token
  atoll token dataplane --mesh default --tag kuma.io/service=web --valid-for 24h""",
)
@click.option("--mesh", "-m", required=True, help="Mesh of the Dataplane.")
@click.option("--name", default=None, help="Name of the Dataplane (default: any Dataplane of the mesh).")
@click.option(
    "--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Required tag value (repeatable; a,b for several)."
)
@click.option(
    "--valid-for", default=None, metavar="DURATION", help="How long the token is valid (e.g. 24h; default 720h)."
)
@click.option(
    "--proxy-type",
    type=click.Choice(["dataplane", "ingress", "egress"]),
    default=None,
    help="Proxy type the token is for (default: dataplane).",
)
def dataplane_token(
    mesh: str, name: str | None, tags: tuple[str, ...], valid_for: str | None, proxy_type: str | None
) -> None:
    """Generate a token a data plane proxy presents to its control plane."""
    given = _given(name=name, tags=parse_tags(tags) if tags else None, validFor=valid_for, proxyType=proxy_type)
    click.echo(_post(paths.TOKENS_DATAPLANE, {"mesh": mesh, **given})["token"])


@token.command(
    name="zone",
    epilog="""\b
Examples:
  atoll token zone --zone east --scope ingress --scope egress > east-proxies.token
  atoll token zone --zone east --scope cp --valid-for 8760h""",
)
@click.option("--zone", required=True, help="Name of the zone.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["cp", "ingress", "egress"]),
    help="What the token is for (repeatable).",
)
@click.option("--valid-for", default=None, metavar="DURATION", help="How long the token is valid (default 720h).")
def zone_token(zone: str, scopes: tuple[str, ...], valid_for: str | None) -> None:
    """Generate a token for a zone's control plane, ingress or egress."""
    body = {"zone": zone, "scope": list(dict.fromkeys(scopes)), **_given(validFor=valid_for)}
    click.echo(_post(paths.TOKENS_ZONE, body)["token"])


@token.command(
    name="revoke",
    epilog="""\b
Examples:
  atoll token revoke --kind dataplane --token-file web-1.token
  atoll token revoke --kind dataplane --mesh default --jti 3f2a...
  atoll token revoke --kind zone --token "$(cat east.token)\"""",
)
@click.option("--kind", type=click.Choice(["dataplane", "zone"]), required=True, help="Kind of token.")
@click.option("--mesh", "-m", default=None, help="Mesh of a dataplane token (default: read from the token).")
@click.option("--token", "token_text", default=None, help="The token to revoke.")
@click.option(
    "--token-file", type=click.Path(exists=True, dir_okay=False), default=None, help="File holding the token to revoke."
)
@click.option("--jti", default=None, help="Id of the token to revoke (its jti claim).")
def revoke(kind: str, mesh: str | None, token_text: str | None, token_file: str | None, jti: str | None) -> None:
    """Revoke a token: proxies or zones presenting it are refused from now on."""
    given = [x for x in (token_text, token_file, jti) if x]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --token, --token-file or --jti")
    body: dict[str, Any] = {"kind": kind}
    if mesh:
        body["mesh"] = mesh
    if token_file:
        with open(token_file, encoding="utf-8") as f:
            body["token"] = f.read().strip()
    elif token_text:
        body["token"] = token_text.strip()
    else:
        body["jti"] = jti
    answer = _post(paths.TOKENS_REVOCATIONS, body)
    where = f" in mesh {answer['mesh']}" if answer.get("mesh") else ""
    click.echo(f"revoked {kind} token {answer.get('jti')}{where}")
