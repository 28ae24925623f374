"""Token requests as Kuma's kumactl sends them (issue 15): its field names (``type``, ``workload``,
``name: ""``) are read, and kumactl gets the bare token as ``text/plain``, as Kuma answers; every
other client keeps Atoll's ``{"token": ...}`` JSON."""

from __future__ import annotations

import httpx

from atoll.pki import unverified_claims
from tests.security.test_api import admin, fields, make_client  # noqa: F401  (fixtures)

KUMACTL = {"User-Agent": "kumactl/2.14.3 (linux; amd64; Kuma/0c7aaec)"}


async def test_kumactl_gets_the_bare_token_and_others_json(admin: httpx.AsyncClient) -> None:  # noqa: F811
    body = {"name": "web-1", "mesh": "default", "tags": {}, "type": "", "workload": "", "validFor": "24h0m0s"}
    r = await admin.post("/tokens/dataplane", json=body, headers=KUMACTL)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    assert unverified_claims(r.text)["name"] == "web-1"
    as_json = await admin.post("/tokens/dataplane", json=body)
    assert unverified_claims(as_json.json()["token"])["name"] == "web-1"
    plain = await admin.post("/tokens/zone", json={"zone": "z", "scope": ["ingress"]}, headers={"Accept": "text/plain"})
    assert plain.headers["content-type"].startswith("text/plain") and plain.text.count(".") == 2


async def test_kuma_fields_are_read_and_checked(admin: httpx.AsyncClient) -> None:  # noqa: F811
    r = await admin.post("/tokens/dataplane", json={"mesh": "default", "name": "", "type": "ingress"})
    claims = unverified_claims(r.json()["token"])
    assert claims["proxyType"] == "ingress" and "name" not in claims
    bad = {"mesh": "default", "type": "sidecar", "workload": "w"}
    assert set(fields(await admin.post("/tokens/dataplane", json=bad))) == {"type", "workload"}
    both = {"mesh": "default", "type": "ingress", "proxyType": "egress"}
    assert "contradicts" in fields(await admin.post("/tokens/dataplane", json=both))["type"]
