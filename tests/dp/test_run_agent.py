"""``run_agent`` in-process: an ingress proxy end to end against the stand-in CP; the ``/ready`` endpoint."""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
from pathlib import Path

import httpx
import pytest

from atoll.dp import READY_LINE, AgentConfig, load_proxy_resource, readiness, run_agent
from tests.dp.support import FakeCp, alive, children_of, until
from tests.helpers import free_port

INGRESS = """\
type: ZoneIngress
name: ingress-1
zone: zone-1
networking:
  address: 127.0.0.1
  port: 10001
  advertisedAddress: 127.0.0.1
  advertisedPort: 10001
  admin:
    port: {{ admin }}
"""


@pytest.mark.envoy
async def test_ingress_agent_in_process(tmp_path: Path, fake_cp: FakeCp, monkeypatch: pytest.MonkeyPatch) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    admin = free_port()
    resource = load_proxy_resource(INGRESS, {"admin": str(admin)}, "ingress")
    out = io.StringIO()
    stop = asyncio.Event()
    config = AgentConfig(cp_url=fake_cp.url, resource=resource, proxy_type="ingress", drain_time=2.0)
    task = asyncio.create_task(run_agent(config, stop=stop, out=out))
    envoys: list[int] = []
    try:
        await until(lambda: out.getvalue() or task.done(), "ready line")
        assert out.getvalue() == READY_LINE.format(host="127.0.0.1", port=admin) + "\n"
        (body,) = fake_cp.bootstrap_requests
        assert body["proxyType"] == "ingress" and body["adminPort"] == admin and body["token"] is None
        assert body["dataplane"]["type"] == "ZoneIngress" and "mesh" not in body["dataplane"]
        (work,) = temp.iterdir()  # the agent's own work dir, removed at exit
        assert work.name.startswith("atoll-dp-") and (work / "bootstrap.json").exists()
        envoys = [p for p in children_of(os.getpid()) if os.readlink(f"/proc/{p}/exe").endswith("envoy")]
        assert len(envoys) == 1
        async with httpx.AsyncClient(trust_env=False) as c:
            assert (await c.get(f"http://127.0.0.1:{fake_cp.listener_port}/")).text == "backend=A"
        stop.set()
        await asyncio.wait_for(task, 10)
        assert fake_cp.reports() == []  # an ingress has no inbounds to report
        assert envoys and not any(alive(p) for p in envoys)
        assert list(temp.iterdir()) == []
    finally:
        stop.set()
        await asyncio.wait([task])


async def test_ready_endpoint() -> None:
    state = {"ready": False}

    async def is_ready() -> bool:
        return state["ready"]

    server = await readiness.start_server("127.0.0.1", 0, is_ready)
    serving = asyncio.create_task(server.serve_forever())
    try:
        url = f"http://127.0.0.1:{readiness.bound_port(server)}"
        async with httpx.AsyncClient(trust_env=False) as c:
            assert (await c.get(url + "/ready")).status_code == 503
            state["ready"] = True
            r = await c.get(url + "/ready?verbose")
            assert (r.status_code, r.text) == (200, "ready\n")
            assert (await c.get(url + "/nope")).status_code == 404
            assert (await c.post(url + "/ready")).status_code == 405
    finally:
        serving.cancel()
        await asyncio.wait([serving])
        server.close()
        await server.wait_closed()
