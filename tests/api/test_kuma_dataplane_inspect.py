"""Kuma's per-proxy inspection paths: ``.../dataplanes/{name}/policies`` (the policies per inbound and
outbound, what ``kumactl inspect dataplane NAME`` reads) and ``.../_config`` (``{"xds": ...}``, ``--type config``).

The policies answer comes from the explanation Atoll's own ``.../policies+explained`` serves, so the
two can be compared item for item; the config answer is what ``.../served-xds`` serves."""

from __future__ import annotations

from typing import Any

import httpx

from atoll.api import paths
from tests.api.conftest import ClientFactory
from tests.api.test_policy_inspection import MESH, _setup


async def test_kuma_policies_are_the_explained_policies_by_inbound_and_outbound(api: httpx.AsyncClient) -> None:
    await _setup(api)
    r = await api.get(paths.expand(paths.KUMA_DATAPLANE_POLICIES, mesh=MESH, name="web-1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["kind"], body["total"]) == ("SidecarDataplane", 2)
    inbound, outbound = body["items"]
    assert (inbound["type"], inbound["name"], inbound["service"], inbound["matchedPolicies"]) == (
        "inbound",
        "10.0.0.1:8080",
        "web",
        {},
    )
    assert (outbound["type"], outbound["service"]) == ("outbound", "backend")
    explained = (await api.get(paths.expand(paths.DATAPLANE_POLICIES, mesh=MESH, name="web-1"))).json()
    (timeout,) = explained["outbounds"][0]["kinds"]
    matched = outbound["matchedPolicies"]["MeshTimeout"]
    assert [p["name"] for p in matched] == [c["policy"] for c in timeout["contributions"]]
    assert matched[0]["type"] == "MeshTimeout" and matched[0]["spec"]["to"]  # the stored policy, as GET answers it
    other = (await api.get(paths.expand(paths.KUMA_DATAPLANE_POLICIES, mesh=MESH, name="web-2"))).json()
    assert [p["name"] for p in other["items"][1]["matchedPolicies"]["MeshTimeout"]] == ["b-mesh", "a-mesh", "web-only"]
    missing = await api.get(paths.expand(paths.KUMA_DATAPLANE_POLICIES, mesh=MESH, name="nope"))
    assert missing.status_code == 404 and "nope" in missing.text


async def test_kuma_policies_list_a_policy_shaping_no_traffic_under_the_dataplane(api: httpx.AsyncClient) -> None:
    """backend-1 has no outbound: the timeouts select it but shape nothing, so they sit under ``dataplane``."""
    await _setup(api)
    body = (await api.get(paths.expand(paths.KUMA_DATAPLANE_POLICIES, mesh=MESH, name="backend-1"))).json()
    whole, inbound = body["items"]
    assert (whole["type"], whole["name"]) == ("dataplane", "")
    assert [p["name"] for p in whole["matchedPolicies"]["MeshTimeout"]] == ["b-mesh", "a-mesh"]
    assert inbound["type"] == "inbound"


class _Served:
    """The ProxyEndpoints parts ``_config`` reads: the served configuration of ``shop/web-1`` (and no
    bootstrap handler, which the app asks for when it is built)."""

    bootstrap = None

    CONFIG: dict[str, Any] = {"listeners": [{"name": "inbound:10.0.0.1:8080"}], "clusters": [{"name": "backend"}]}

    def xds_config(self, mesh: str, name: str) -> dict[str, Any] | None:
        return self.CONFIG if (mesh, name) == (MESH, "web-1") else None


async def test_kuma_config_is_the_served_configuration_under_xds(make_client: ClientFactory) -> None:
    api = await make_client(proxies=_Served())
    await _setup(api)
    path = paths.expand(paths.KUMA_DATAPLANE_CONFIG, mesh=MESH, name="web-1")
    r = await api.get(path, params={"shadow": "false"})
    assert r.status_code == 200, r.text
    assert r.json() == {"xds": _Served.CONFIG}
    served = await api.get(paths.expand(paths.DATAPLANE_SERVED_XDS, mesh=MESH, name="web-1"))
    assert served.json() == _Served.CONFIG
    for params, field in (
        ({"shadow": "true"}, "shadow"),
        ({"include": "diff"}, "include"),
        ({"shadow": "x"}, "shadow"),
    ):
        refused = await api.get(path, params=params)
        assert refused.status_code == 400 and field in refused.text, (params, refused.text)
    offline = await api.get(paths.expand(paths.KUMA_DATAPLANE_CONFIG, mesh=MESH, name="web-2"))
    assert offline.status_code == 404 and "not connected" in offline.text
    stranger = await make_client(client_addr="10.1.2.3", proxies=_Served())
    assert (await stranger.get(path)).status_code in (401, 403)  # the served config holds the private key
