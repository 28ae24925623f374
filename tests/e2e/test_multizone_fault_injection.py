"""MeshFaultInjection written at the global control plane takes effect in both zones, on real
sidecars: a global CP, two zone CPs (KDS over TLS), a zone ingress in zone-2, mTLS.

``api-a`` runs in zone-1, ``api-b`` in zone-2; ``caller-1`` (zone-1) calls both (``api-b``
through zone-2's ingress), ``caller-2`` (zone-2) calls ``api-b``; ``watcher-1`` (zone-1, another
service) calls ``api-a``. One policy at global aborts with 418 the requests of callers whose
certificate is ``spiffe://default/caller``: both zones' sidecars enforce it, for a caller of the
same zone and one from the other zone, and leave other identities alone; deleted at global, it
is gone in both zones.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.mesh import call, http_json
from tests.e2e.multizone import MultiZone, allow_all, mtls_mesh
from tests.helpers import free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]

OUT = {name: free_port() for name in ("caller-1:api-a", "caller-1:api-b", "caller-2:api-b", "watcher-1:api-a")}

FAULT = {
    "type": "MeshFaultInjection",
    "mesh": "default",
    "name": "abort-callers",
    "spec": {
        "targetRef": {"kind": "Mesh"},
        "rules": [
            {
                "matches": [{"spiffeID": {"type": "Exact", "value": "spiffe://default/caller"}}],
                "default": {"http": [{"abort": {"httpStatus": 418, "percentage": 100}}]},
            }
        ],
    },
}


@pytest.fixture(scope="module")
def mz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiZone]:
    m = MultiZone(tmp_path_factory.mktemp("multizone-faults"))
    try:
        m.start_global()
        m.glob.put(mtls_mesh())
        m.glob.put(allow_all())
        m.add_zone("zone-1")
        m.add_zone("zone-2")
        m.ingress("zone-2")
        m.service("zone-1", "api-a", "api-a")
        m.service("zone-2", "api-b", "api-b")
        m.service(
            "zone-1", "caller-1", "caller", outbound={"api-a": OUT["caller-1:api-a"], "api-b": OUT["caller-1:api-b"]}
        )
        m.service("zone-2", "caller-2", "caller", outbound={"api-b": OUT["caller-2:api-b"]})
        m.service("zone-1", "watcher-1", "watcher", outbound={"api-a": OUT["watcher-1:api-a"]})
        yield m
    except BaseException:
        print(m.dump_logs())
        raise
    finally:
        m.stop()


def _answers() -> dict[str, str]:
    return {path: call(port) for path, port in OUT.items()}


SERVED = {
    "caller-1:api-a": "backend=api-a",
    "caller-1:api-b": "backend=api-b",
    "caller-2:api-b": "backend=api-b",
    "watcher-1:api-a": "backend=api-a",
}


def test_fault_written_at_global_takes_effect_in_both_zones(mz: MultiZone) -> None:
    wait_until(lambda: _answers() == SERVED, timeout=60, what="every path served, across zones too")

    mz.glob.put(FAULT)
    aborted = {**SERVED, "caller-1:api-a": "status:418", "caller-1:api-b": "status:418", "caller-2:api-b": "status:418"}
    wait_until(lambda: _answers() == aborted, timeout=30, what="the abort in force in both zones")
    for _ in range(10):  # steady: every request of a caller aborted, the watcher always served
        assert _answers() == aborted
    # the zones got the policy from global (read back from each zone's own store)
    for zone in ("zone-1", "zone-2"):
        items = mz.zones[zone].get("/meshes/default/meshfaultinjections")["items"]
        assert [i["spec"]["rules"][0]["default"]["http"][0]["abort"]["httpStatus"] for i in items] == [418], zone

    status, body = http_json("DELETE", mz.glob.url + "/meshes/default/meshfaultinjections/abort-callers")
    assert status == 200, body
    wait_until(lambda: _answers() == SERVED, timeout=30, what="the abort gone in both zones")
