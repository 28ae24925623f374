"""ExternalServices through real Envoy, with and without a zone egress (spec: "(optional) The zone
egress ... proxy traffic from local data plane proxies to external services from local zone").

Deployment (built once): a global CP, zone-1 and zone-2 with an ingress and an egress each; mesh
``default`` has mTLS and ``routing.zoneEgress`` (external traffic leaves through the egress, which
terminates the mesh mTLS, checks MeshTrafficPermission and originates); mesh ``direct`` has neither
(sidecars call external services themselves). Outside the mesh: a plain HTTP server and an HTTPS
server whose certificate comes from its own CA. ``frontend`` (zone-1, default) and ``direct-client``
(zone-1, direct) call them; ``intruder`` (zone-1, default) is denied ``ext-http`` by a permission.
``ext-pinned`` carries ``kuma.io/zone: zone-2``: zone-1 reaches it through zone-2's ingress and egress.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.external import TestCa, TlsHttpBackend
from tests.e2e.mesh import http_json
from tests.e2e.multizone import MultiZone, allow_all, mtls_mesh
from tests.helpers import HttpBackend, free_port, http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]

OUT = {name: free_port() for name in ("ext-http", "ext-tls", "ext-tls-wrong-ca", "ext-pinned")}
DIRECT_OUT = {name: free_port() for name in ("ext-http", "ext-tls", "ext-tls-wrong-ca")}
INTRUDER_OUT = {"ext-http": free_port()}
SNI = "external.test"


@dataclass
class Deployment:
    mz: MultiZone
    plain: HttpBackend
    pinned: HttpBackend
    secure: TlsHttpBackend
    ca: TestCa
    wrong_ca: TestCa


def external(mesh: str, name: str, port: int, *, tls: dict[str, Any] | None = None, **tags: str) -> dict[str, Any]:
    networking: dict[str, Any] = {"address": f"127.0.0.1:{port}"}
    if tls is not None:
        networking["tls"] = tls
    return {
        "type": "ExternalService",
        "mesh": mesh,
        "name": name,
        "networking": networking,
        "tags": {"kuma.io/service": name, "kuma.io/protocol": "http", **tags},
    }


def externals(mesh: str, d: Deployment) -> list[dict[str, Any]]:
    good = {"enabled": True, "caCert": {"inlineString": d.ca.pem}, "sni": SNI}
    wrong = {"enabled": True, "caCert": {"inlineString": d.wrong_ca.pem}, "sni": SNI}
    return [
        external(mesh, "ext-http", d.plain.port),
        external(mesh, "ext-tls", d.secure.port, tls=good),
        external(mesh, "ext-tls-wrong-ca", d.secure.port, tls=wrong),
    ]


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("external")
    mz = MultiZone(workdir)
    ca, wrong_ca = TestCa("external-ca"), TestCa("some-other-ca")
    d = Deployment(
        mz,
        HttpBackend("outside"),
        HttpBackend("outside-zone-2"),
        TlsHttpBackend("outside-tls", ca, SNI, workdir),
        ca,
        wrong_ca,
    )
    try:
        mz.start_global()
        mesh = mtls_mesh("default")
        mesh["routing"] = {"zoneEgress": True}
        mz.glob.put(mesh)
        mz.glob.put(allow_all("default"))
        mz.glob.put({"type": "Mesh", "name": "direct"})
        for doc in externals("default", d) + externals("direct", d):
            mz.glob.put(doc)
        mz.glob.put(external("default", "ext-pinned", d.pinned.port, **{"kuma.io/zone": "zone-2"}))
        mz.glob.put(
            {
                "type": "MeshTrafficPermission",
                "mesh": "default",
                "name": "no-intruder-outside",
                "spec": {
                    "targetRef": {"kind": "MeshService", "name": "ext-http"},
                    "from": [{"targetRef": {"kind": "MeshService", "name": "intruder"}, "default": {"action": "Deny"}}],
                },
            }
        )
        for zone in ("zone-1", "zone-2"):
            mz.add_zone(zone)
        for zone in ("zone-1", "zone-2"):
            mz.ingress(zone)
            mz.egress(zone)
        mz.service("zone-1", "frontend", "frontend", outbound=OUT)
        mz.service("zone-1", "intruder", "intruder", outbound=INTRUDER_OUT)
        mz.service("zone-1", "direct-client", "direct-client", mesh="direct", outbound=DIRECT_OUT)
        yield d
    except BaseException:
        print(mz.dump_logs())
        raise
    finally:
        mz.stop()
        d.plain.stop()
        d.pinned.stop()
        d.secure.stop()


def call(port: int) -> str:
    try:
        status, body = http_get(port, timeout=3)
    except OSError as e:
        return f"error:{type(e).__name__}"
    return body if status == 200 else f"status:{status}:{body}"


def stats(d: Deployment, agent: str) -> dict[str, int]:
    """Envoy's counters of a proxy, read from its admin API."""
    doc = json.loads(d.mz.agents[agent].admin("/stats?format=json"))
    return {s["name"]: int(s["value"]) for s in doc["stats"] if "value" in s and isinstance(s["value"], int)}


def test_external_http_without_egress(dep: Deployment) -> None:
    """Without egress routing the sidecar reaches the external service at its address."""
    wait_until(lambda: call(DIRECT_OUT["ext-http"]) == "backend=outside", timeout=20, what="direct ext-http")
    assert stats(dep, "direct-client").get("cluster.ext-http.upstream_cx_total", 0) >= 1


def test_external_tls_without_egress_right_and_wrong_ca(dep: Deployment) -> None:
    wait_until(lambda: call(DIRECT_OUT["ext-tls"]) == "backend=outside-tls", timeout=20, what="direct ext-tls")
    body = call(DIRECT_OUT["ext-tls-wrong-ca"])
    assert body.startswith("status:503"), body
    failed = stats(dep, "direct-client")
    assert failed.get("cluster.ext-tls-wrong-ca.ssl.fail_verify_error", 0) >= 1, {
        k: v for k, v in failed.items() if "ext-tls" in k and "ssl" in k
    }
    assert failed.get("cluster.ext-tls.ssl.fail_verify_error", 0) == 0


def test_external_http_through_egress(dep: Deployment) -> None:
    before = dep.plain.requests
    wait_until(lambda: call(OUT["ext-http"]) == "backend=outside", timeout=30, what="ext-http through the egress")
    assert dep.plain.requests > before
    # It went through zone-1's egress, which terminated mTLS and originated plain HTTP.
    egress = stats(dep, "egress-zone-1")
    assert egress.get("cluster.external_default_ext-http.upstream_rq_total", 0) >= 1, sorted(
        k for k in egress if "ext-http" in k
    )
    assert stats(dep, "frontend").get("cluster.ext-http.upstream_cx_total", 0) >= 1


def test_external_tls_through_egress_right_and_wrong_ca(dep: Deployment) -> None:
    wait_until(lambda: call(OUT["ext-tls"]) == "backend=outside-tls", timeout=30, what="ext-tls through the egress")
    body = call(OUT["ext-tls-wrong-ca"])
    assert body.startswith("status:503"), body
    egress = stats(dep, "egress-zone-1")
    assert egress.get("cluster.external_default_ext-tls-wrong-ca.ssl.fail_verify_error", 0) >= 1
    assert egress.get("cluster.external_default_ext-tls.ssl.fail_verify_error", 0) == 0


def test_permission_deny_at_the_egress(dep: Deployment) -> None:
    wait_until(lambda: call(OUT["ext-http"]) == "backend=outside", timeout=30, what="frontend allowed")
    body = wait_until(
        lambda: (b := call(INTRUDER_OUT["ext-http"])).startswith("status:403") and b,
        timeout=30,
        what="intruder denied by the egress",
    )
    assert "RBAC" in str(body)
    egress = stats(dep, "egress-zone-1")
    assert any(k.endswith("rbac.denied") and v >= 1 for k, v in egress.items()), sorted(
        k for k in egress if "rbac" in k
    )


def test_zone_pinned_external_service_from_the_other_zone(dep: Deployment) -> None:
    """``kuma.io/zone: zone-2``: zone-1 -> zone-1 egress -> zone-2 ingress -> zone-2 egress -> outside."""
    before = dep.pinned.requests
    wait_until(lambda: call(OUT["ext-pinned"]) == "backend=outside-zone-2", timeout=40, what="pinned ext")
    assert dep.pinned.requests > before
    z2 = stats(dep, "egress-zone-2")
    assert z2.get("cluster.external_default_ext-pinned.upstream_rq_total", 0) >= 1
    z1 = stats(dep, "egress-zone-1")
    assert z1.get("cluster.default_ext-pinned.upstream_cx_total", 0) >= 1
    ingress = dep.mz.zones["zone-2"].get("/zoneingresses/ingress-zone-2")
    listed = [a for a in ingress["availableServices"] if a.get("externalService")]
    assert listed == [
        {
            "tags": {"kuma.io/protocol": "http", "kuma.io/service": "ext-pinned", "kuma.io/zone": "zone-2"},
            "instances": 1,
            "mesh": "default",
            "externalService": True,
        }
    ]


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"networking": {"address": "no-port-here"}}, "networking.address"),
        ({"networking": {"address": "127.0.0.1:99999"}}, "networking.address"),
        ({"networking": {"address": "h:1", "tls": {"enabled": True, "caCert": {}}}}, "networking.tls.caCert"),
        (
            {"networking": {"address": "h:1", "tls": {"enabled": True, "caCert": {"inline": "%%%"}}}},
            "networking.tls.caCert.inline",
        ),
        ({"networking": {"address": "h:1", "tls": {"sni": "a", "serverName": "b"}}}, "networking.tls.sni"),
        (
            {"networking": {"address": "h:1", "tls": {"enabled": True, "caCert": {"inlineString": ""}}}},
            "networking.tls.caCert.inlineString",
        ),
        (
            {"networking": {"address": "h:1", "tls": {"enabled": True, "caCert": {"inlineString": "not a cert"}}}},
            "networking.tls.caCert.inlineString",
        ),
        (
            {"networking": {"address": "h:1", "tls": {"enabled": True, "caCert": {"file": ""}}}},
            "networking.tls.caCert.file",
        ),
        ({"networking": {"address": "h:1"}, "tags": {"kuma.io/protocol": "http"}}, "tags"),
        (
            {"networking": {"address": "h:1"}, "tags": {"kuma.io/service": "bad", "kuma.io/protocol": "soap"}},
            "tags.kuma.io/protocol",
        ),
        (
            {"networking": {"address": "h:1"}, "tags": {"kuma.io/service": "bad", "kuma.io/zone": ""}},
            "tags.kuma.io/zone",
        ),
    ],
)
def test_bad_external_services_are_rejected(dep: Deployment, doc: dict[str, Any], field: str) -> None:
    body = {"type": "ExternalService", "mesh": "default", "name": "bad", "tags": {"kuma.io/service": "bad"}, **doc}
    body["tags"] = doc.get("tags", body["tags"])
    status, answer = http_json("PUT", dep.mz.glob.url + "/meshes/default/externalservices/bad", body)
    assert status == 400, answer
    assert field in json.dumps(answer), answer


def test_wrong_ca_shows_in_inspect_stats(dep: Deployment) -> None:
    """``atoll inspect dataplane NAME --stats`` (through the CP and the agent's admin relay) names the
    failure: the cluster of the external service counts certificate verification errors."""
    import subprocess

    from tests.helpers import ATOLL

    call(DIRECT_OUT["ext-tls-wrong-ca"])
    cmd = [*ATOLL, "--cp", dep.mz.zones["zone-1"].url, "inspect", "dataplane", "direct-client", "-m", "direct"]
    out = subprocess.run(
        [*cmd, "--stats", "--filter", "ssl.fail_verify", "-o", "json"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    failures = json.loads(out.stdout)
    assert failures.get("cluster.ext-tls-wrong-ca.ssl.fail_verify_error", 0) >= 1, failures
    assert not any(k.startswith("cluster.ext-tls.") for k in failures), failures


def test_conflicting_external_services_are_reported_by_inspect(dep: Deployment) -> None:
    """Two ExternalServices claiming one ``kuma.io/service``: the first by name is used, the other is
    named as a conflict by ``atoll inspect zoneegress`` (and logged by the zone CP)."""
    import subprocess

    from tests.helpers import ATOLL

    clash = external("default", "zz-ext-http-clash", dep.pinned.port)
    clash["tags"]["kuma.io/service"] = "ext-http"
    dep.mz.glob.put(clash)
    try:
        cmd = [*ATOLL, "--cp", dep.mz.zones["zone-1"].url, "inspect", "zoneegress", "egress-zone-1", "-o", "json"]

        def conflicts() -> list[str]:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            return list(json.loads(out.stdout)["zoneEgressInsight"].get("conflicts") or [])

        found = wait_until(conflicts, timeout=20, what="the conflict in inspect")
        assert found == [
            'mesh default: ExternalService "zz-ext-http-clash": kuma.io/service "ext-http" is already taken by '
            'ExternalService "ext-http"; that one is used'
        ]
        assert call(OUT["ext-http"]) == "backend=outside"  # still the first one
    finally:
        http_json("DELETE", dep.mz.glob.url + "/meshes/default/externalservices/zz-ext-http-clash")
