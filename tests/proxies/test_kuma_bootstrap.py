"""Kuma's bootstrap request (``kuma-dp`` 2.14) at ``ProxyApi.bootstrap``: translated into the one
bootstrap Atoll makes, answered in Kuma's response shape, refused naming Kuma's fields.

The request bodies here have the fields the real ``kuma-dp run`` 2.14.3 sends (seen on the wire);
``tests/compat/test_kuma_dp.py`` runs the binary itself.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from atoll.errors import InvalidInput
from atoll.pki import bundle_trusts_self_signed, generate_self_signed
from atoll.proxies.admin_requests import AdminRequestQueue
from atoll.proxies.endpoints import ProxyApi
from atoll.proxies.inventory import Inventory
from atoll.proxies.kuma_bootstrap import is_kuma_request
from atoll.proxies.lifecycle import META_DATAPLANE, META_PROXY_TYPE, DataplaneLifecycle
from atoll.proxies.reconciler import ProxyReconciler
from atoll.proxies.removal import RemovalTimers
from atoll.resources import decode
from atoll.resources.proxy_id import NodeId
from atoll.store import MemoryStore
from atoll.xds.generate import TOKEN_HEADER
from atoll.xds.server import SnapshotCache

WORKDIR = "/tmp/kuma-dp-work"
SIDECAR = {
    "type": "Dataplane",
    "mesh": "default",
    "name": "web-1",
    "creationTime": "0001-01-01T00:00:00Z",
    "modificationTime": "0001-01-01T00:00:00Z",
    "kri": "kri_dp_default___web-1_",
    "networking": {
        "address": "127.0.0.1",
        "inbound": [{"port": 18080, "servicePort": 18081, "tags": {"kuma.io/service": "web"}}],
        "outbound": [{"port": 18090, "tags": {"kuma.io/service": "backend"}}],
    },
}


def kuma_request(resource: dict[str, Any] | None = SIDECAR, **fields: Any) -> dict[str, Any]:
    """A request as ``kuma-dp run`` 2.14.3 sends it (the fields Atoll ignores included)."""
    body: dict[str, Any] = {
        "mesh": resource.get("mesh", "") if resource else "",
        "name": resource["name"] if resource else "",
        "proxyType": "dataplane",
        "dataplaneToken": "a.b.c",
        "dataplaneTokenPath": "/tmp/token",
        "dataplaneResource": json.dumps(resource) if resource else "",
        "version": {
            "kumaDp": {"version": "2.14.3", "gitTag": "v2.14.3", "gitCommit": "0c7aaec", "buildDate": "local-build"},
            "envoy": {"version": "1.40.0", "build": "x/1.40.0/Clean/RELEASE/BoringSSL", "kumaDpCompatible": False},
        },
        "caCert": "",
        "dynamicMetadata": {},
        "otelEnv": {"pipeEnabled": True},
        "dnsPort": 15054,
        "readinessPort": 9902,
        "operatingSystem": "linux",
        "features": ["feature-tcp-accesslog-via-named-pipe", "feature-strict-inbound-ports"],
        "resources": {"maxHeapSizeBytes": 0},
        "workdir": WORKDIR,
        "metricsResources": {"certPath": "", "keyPath": ""},
        "systemCaPath": "/etc/ssl/certs/ca-certificates.crt",
        "ipv6Enabled": True,
        "spireResources": {"socketPath": ""},
    }
    body.update(fields)
    return body


@pytest.fixture
async def proxies() -> AsyncIterator[tuple[ProxyApi, MemoryStore]]:
    store = MemoryStore()
    await store.create(decode({"type": "Mesh", "name": "default"}))
    cache = SnapshotCache()
    rec = ProxyReconciler(store, cache, zone="zone-1", window=0.0)
    inventory = Inventory(cp_instance="test")
    removal = RemovalTimers(store, inventory, grace=60, zone="zone-1")
    lifecycle = DataplaneLifecycle(store, rec, inventory, removal, xds_port=5678, zone="zone-1")
    yield ProxyApi(lifecycle, inventory, rec, cache, AdminRequestQueue()), store
    await store.close()


def envoy_bootstrap(answer: dict[str, Any]) -> dict[str, Any]:
    assert set(answer) == {"bootstrap", "kumaSidecarConfiguration"}, answer
    doc = json.loads(base64.b64decode(answer["bootstrap"]))
    assert isinstance(doc, dict)
    return doc


async def test_kumas_request_gets_atolls_bootstrap_in_kumas_response(proxies: tuple[ProxyApi, MemoryStore]) -> None:
    api, _ = proxies
    answer = await api.bootstrap(kuma_request(), "cp.example")
    assert answer["kumaSidecarConfiguration"] == {
        "networking": {"isUsingTransparentProxy": False, "address": "127.0.0.1", "corefileTemplate": None},
        "metrics": {"aggregate": []},
    }
    boot = envoy_bootstrap(answer)
    # The same node id, metadata and token header as Atoll's agent gets: the ADS server needs nothing new.
    assert boot["node"]["id"] == str(NodeId.dataplane("default", "web-1"))
    meta = boot["node"]["metadata"]
    assert meta[META_PROXY_TYPE] == "dataplane"
    registered = json.loads(meta[META_DATAPLANE])
    assert "kri" not in registered and "creationTime" not in registered
    assert registered["networking"] == SIDECAR["networking"]
    (grpc_service,) = boot["dynamic_resources"]["ads_config"]["grpc_services"]
    assert grpc_service["initial_metadata"] == [{"key": TOKEN_HEADER, "value": "a.b.c"}]
    # Envoy's admin is on the Unix socket kuma-dp looks for in its work directory.
    assert boot["admin"]["address"] == {"pipe": {"path": f"{WORKDIR}/kuma-envoy-admin.sock", "mode": 0o600}}
    ads = boot["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert ads["endpoint"]["address"]["socket_address"] == {"address": "cp.example", "port_value": 5678}


async def test_the_agents_own_request_is_answered_as_before(proxies: tuple[ProxyApi, MemoryStore]) -> None:
    api, _ = proxies
    doc = {k: v for k, v in SIDECAR.items() if k not in ("kri", "creationTime", "modificationTime")}
    body = {"proxyType": "dataplane", "dataplane": doc, "adminPort": 9911, "version": {"agent": "1"}}
    assert not is_kuma_request(body)
    answer = await api.bootstrap(body, "127.0.0.1")
    assert set(answer) == {"bootstrap", "xds"}
    assert answer["bootstrap"]["admin"]["address"]["socket_address"]["port_value"] == 9911


async def test_a_zone_ingress_and_a_zone_egress(proxies: tuple[ProxyApi, MemoryStore]) -> None:
    api, _ = proxies
    for proxy_type, kind, node in (
        ("ingress", "ZoneIngress", NodeId.ingress("ingress-1")),
        ("egress", "ZoneEgress", NodeId.egress("ingress-1")),
    ):
        resource = {"type": kind, "name": "ingress-1", "networking": {"address": "127.0.0.1", "port": 10001}}
        boot = envoy_bootstrap(await api.bootstrap(kuma_request(resource, proxyType=proxy_type), "127.0.0.1"))
        assert boot["node"]["id"] == str(node)
        assert boot["node"]["metadata"][META_PROXY_TYPE] == proxy_type


async def test_a_dataplane_applied_beforehand_is_started_by_mesh_and_name(
    proxies: tuple[ProxyApi, MemoryStore],
) -> None:
    api, store = proxies
    request = kuma_request(None, mesh="default", name="web-1")
    with pytest.raises(InvalidInput) as caught:
        await api.bootstrap(request, "127.0.0.1")
    assert [str(e) for e in caught.value.errors] == [
        "dataplaneResource: empty, and there is no Dataplane web-1 in mesh default to start from"
    ]
    doc = {k: v for k, v in SIDECAR.items() if k not in ("kri", "creationTime", "modificationTime")}
    await store.create(decode(doc))
    boot = envoy_bootstrap(await api.bootstrap(request, "127.0.0.1"))
    assert boot["node"]["id"] == "default.web-1"
    # Served the stored Dataplane, not registering it: it stays the user's after the proxy goes.
    assert META_DATAPLANE not in boot["node"]["metadata"]
    with pytest.raises(InvalidInput) as caught:
        await api.bootstrap(kuma_request(None, mesh="", name="web-1"), "127.0.0.1")
    assert caught.value.errors[0].path == "dataplaneResource"


async def test_every_problem_is_named_by_kumas_field(proxies: tuple[ProxyApi, MemoryStore]) -> None:
    api, _ = proxies
    with pytest.raises(InvalidInput) as caught:
        await api.bootstrap(
            kuma_request(proxyType="gateway", workdir="relative", name="web-2", dataplaneToken=7), "127.0.0.1"
        )
    assert {e.path for e in caught.value.errors} == {"proxyType", "workdir", "name", "dataplaneToken"}
    assert caught.value.title == "invalid bootstrap request"

    with pytest.raises(InvalidInput) as caught:
        await api.bootstrap(kuma_request(workdir="/" + "w" * 100), "127.0.0.1")
    assert [e.path for e in caught.value.errors] == ["workdir"]
    assert "shorter --work-dir" in caught.value.errors[0].message

    with pytest.raises(InvalidInput) as caught:
        await api.bootstrap(kuma_request(dataplaneResource="{not json"), "127.0.0.1")
    assert [e.path for e in caught.value.errors] == ["dataplaneResource"]

    bad_port = json.loads(json.dumps(SIDECAR))
    bad_port["networking"]["inbound"][0]["port"] = 70000
    with pytest.raises(InvalidInput) as caught:
        await api.bootstrap(kuma_request(bad_port), "127.0.0.1")
    assert [e.path for e in caught.value.errors] == ["dataplaneResource.networking.inbound[0].port"]

    elsewhere = {**SIDECAR, "mesh": "nowhere"}
    with pytest.raises(InvalidInput) as caught:
        await api.bootstrap(kuma_request(elsewhere), "127.0.0.1")
    assert [str(e) for e in caught.value.errors] == ['dataplaneResource.mesh: mesh "nowhere" does not exist']


def test_the_request_shapes_are_told_apart() -> None:
    assert is_kuma_request(kuma_request())
    assert is_kuma_request({"version": {"kumaDp": {"version": "2.14.3"}}, "mesh": "default", "name": "web"})
    assert not is_kuma_request({"dataplane": {}, "version": {"kumaDp": {}}})
    assert not is_kuma_request({"proxyType": "dataplane"})


def self_signed(host: str) -> str:
    now = datetime.datetime.now(datetime.UTC)
    return generate_self_signed([host], valid_for=datetime.timedelta(days=1), now=now)[0]


async def test_a_ca_that_cannot_verify_a_self_signed_ads_certificate_is_refused(
    proxies: tuple[ProxyApi, MemoryStore],
) -> None:
    """kuma-dp has one --ca-cert-file for REST and ADS: a file without ADS's self-signed certificate
    would leave Envoy retrying ADS forever, so the bootstrap is refused saying what to give."""
    api, _ = proxies
    ads, rest = self_signed("127.0.0.1"), self_signed("localhost")
    checked = replace(api, ads_cert_pem=ads)
    with pytest.raises(InvalidInput) as caught:
        await checked.bootstrap(kuma_request(caCert=rest), "127.0.0.1")
    assert [e.path for e in caught.value.errors] == ["caCert"]
    assert "holding both" in caught.value.errors[0].message
    for bundle in (ads, rest + ads):
        envoy_bootstrap(await checked.bootstrap(kuma_request(caCert=bundle), "127.0.0.1"))
    assert bundle_trusts_self_signed(rest, ads) is False
    assert bundle_trusts_self_signed(rest + ads, ads) is True
    assert bundle_trusts_self_signed("not a pem", ads) is None
