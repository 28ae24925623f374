"""MeshFaultInjection and MeshRateLimit through a real control plane: written over the REST API,
they reach the backend's sidecar (and, for a fault per source, the caller's tags header on web's
sidecar) and change the answers; deleted, they are gone."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import AgentFactory, BackendFactory
from tests.e2e.mesh import CpProcess, http_json
from tests.e2e.test_single_zone import backend_dp, web_dp
from tests.helpers import free_port, http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]


def _policy(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "mesh": "default", "name": name, "spec": spec}


FAULT_FROM_WEB = _policy(
    "MeshFaultInjection",
    "abort-web",
    {
        "targetRef": {"kind": "MeshService", "name": "backend"},
        "from": [
            {
                "targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/service": "web"}},
                "default": {"http": [{"abort": {"httpStatus": 503, "percentage": 100}}]},
            }
        ],
    },
)

RATE_LIMIT = _policy(
    "MeshRateLimit",
    "limit-backend",
    {
        "targetRef": {"kind": "MeshService", "name": "backend"},
        "from": [
            {
                "targetRef": {"kind": "Mesh"},
                "default": {
                    "local": {"http": {"requestRate": {"num": 3, "interval": "1m"}, "onRateLimit": {"status": 429}}}
                },
            }
        ],
    },
)


def test_fault_injection_and_rate_limit_take_effect(
    cp: CpProcess, agents: AgentFactory, backends: BackendFactory
) -> None:
    b1, web_app = backends("b1"), backends("web")
    out = free_port()
    agents(cp, backend_dp("backend-1", b1.port))
    agents(cp, web_dp(out, web_app.port))
    wait_until(lambda: http_get(out)[1] == "backend=b1", timeout=10, what="web -> backend-1 through two sidecars")

    # A fault for callers tagged kuma.io/service=web: every request of web is aborted with 503.
    cp.put(FAULT_FROM_WEB)
    wait_until(lambda: http_get(out)[0] == 503, timeout=10, what="the abort in force")
    assert [http_get(out)[0] for _ in range(20)] == [503] * 20
    # Deleted: the abort is gone.
    status, body = http_json("DELETE", cp.url + "/meshes/default/meshfaultinjections/abort-web")
    assert status == 200, body
    wait_until(lambda: http_get(out)[1] == "backend=b1", timeout=10, what="the abort removed")

    # 3 requests a minute: once the limit is in force, the requests past it get its 429.
    cp.put(RATE_LIMIT)
    wait_until(lambda: http_get(out)[0] == 429, timeout=10, what="the rate limit in force")
    assert [http_get(out)[0] for _ in range(5)] == [429] * 5
