"""``atoll dp run``: its help (``--cp`` is the REST API, every option explained, examples), the proxy
type taken from the file's ``type``, and a ``--cp`` pointing at an ADS (gRPC) port refused at once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import click
import httpx
import pytest
from click.testing import CliRunner
from grpc import aio

from atoll.cli.dp import run
from atoll.dp import load_proxy_resource, proxy_type_of
from atoll.dp.cp_client import BootstrapRequest, CpRejected, CpUnavailable, fetch_bootstrap
from atoll.errors import InvalidInput

INGRESS = """\
type: ZoneIngress
name: ingress-1
networking:
  address: 127.0.0.1
  port: 10001
"""


def test_help_explains_every_option_and_ends_with_examples() -> None:
    out = CliRunner().invoke(run, ["--help"], terminal_width=200).output
    assert "http://127.0.0.1:5681" in out and "not the ADS port 5678" in out
    undocumented = [p.name for p in run.params if isinstance(p, click.Option) and not (p.help or "").strip()]
    assert undocumented == []
    examples = out.index("Examples:")
    assert examples > out.index("--verbose")
    assert "atoll dp run --cp http://127.0.0.1:5681 --dataplane-file" in out[examples:]


def test_the_proxy_type_comes_from_the_files_type() -> None:
    resource = load_proxy_resource(INGRESS, {}, None)
    assert (resource.type, proxy_type_of(resource)) == ("ZoneIngress", "ingress")
    with pytest.raises(InvalidInput, match='a proxy of type "dataplane" needs a Dataplane resource'):
        load_proxy_resource(INGRESS, {}, "dataplane")
    with pytest.raises(InvalidInput, match="a proxy needs a Dataplane, ZoneIngress, ZoneEgress resource, got Mesh"):
        load_proxy_resource("type: Mesh\nname: m\n", {}, None)


@pytest.fixture
async def grpc_port() -> AsyncIterator[int]:
    server = aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


async def test_a_cp_url_at_an_ads_port_is_refused_at_once_saying_so(grpc_port: int) -> None:
    request = BootstrapRequest("dataplane", {}, None, "delta", 9901, {})
    started = time.monotonic()
    with pytest.raises(CpUnavailable) as info:
        await fetch_bootstrap(f"http://127.0.0.1:{grpc_port}", request, give_up_after=60)
    assert time.monotonic() - started < 30  # not retried until the deadline
    assert f"--cp http://127.0.0.1:{grpc_port} answers in gRPC (HTTP/2): that is the CP's ADS port" in str(info.value)
    assert "e.g. http://127.0.0.1:5681" in str(info.value)


def unknown_key() -> httpx.Response:
    details = 'Dataplane default/web-1: dataplane token rejected (unknown-key): the token was signed by key "k"'
    return httpx.Response(401, json={"title": "Unauthorized", "details": details})


async def test_a_token_key_still_on_its_way_to_the_zone_is_waited_for_until_the_deadline() -> None:
    answers = [unknown_key(), unknown_key(), httpx.Response(200, json={"bootstrap": {"node": {}}})]
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        return answers[len(seen) - 1]

    request = BootstrapRequest("dataplane", {}, "t", "delta", 9901, {})
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        got = await fetch_bootstrap("http://cp", request, give_up_after=30, http=http)
        assert got.bootstrap == {"node": {}} and len(seen) == 3
        # past the deadline the refusal is final, with the CP's reason
        with pytest.raises(CpRejected, match=r"\(unknown-key\)"):
            await fetch_bootstrap(
                "http://cp",
                request,
                give_up_after=0.3,
                http=httpx.AsyncClient(transport=httpx.MockTransport(lambda r: unknown_key())),
            )
        # any other 401 is final at once
        other = httpx.Response(401, json={"title": "Unauthorized", "details": "dataplane token rejected (expired)"})
        started = time.monotonic()
        with pytest.raises(CpRejected, match="expired"):
            await fetch_bootstrap(
                "http://cp",
                request,
                give_up_after=30,
                http=httpx.AsyncClient(transport=httpx.MockTransport(lambda r: other)),
            )
        assert time.monotonic() - started < 5
