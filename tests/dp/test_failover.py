"""An agent given several CP instances (``atoll.dp.failover``): the ``--cp`` list, the ADS cluster that
lists every instance (accepted by real Envoy), the bootstrap fetched from the first instance that
answers, and a 4xx that is final."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from atoll.dp.cp_client import BootstrapRequest, CpRejected
from atoll.dp.envoy import envoy_binary
from atoll.dp.failover import add_ads_endpoints, ads_endpoints, cp_urls, fetch_from_any
from atoll.xds.generate.bootstrap import envoy_bootstrap
from tests.helpers import free_port


def test_cp_urls_repeat_and_comma_lists() -> None:
    assert cp_urls(["http://a:5681", "http://b:5681/, https://c:5681"]) == [
        "http://a:5681",
        "http://b:5681",
        "https://c:5681",
    ]
    assert cp_urls(["http://a:5681,http://a:5681"]) == ["http://a:5681"]
    for bad, message in ((["http://a:1,,http://b:2"], "empty URL"), (["a:5681"], "http"), ([], "at least one")):
        with pytest.raises(ValueError, match=message):
            cp_urls(bad)


def _bootstrap() -> dict[str, object]:
    return envoy_bootstrap(
        node_id="default.web-1", node_cluster="web", xds_host="127.0.0.1", xds_port=5678, ads="delta", admin_port=9901
    )


def test_one_instance_leaves_the_bootstrap_as_the_cp_wrote_it() -> None:
    b = _bootstrap()
    before = json.dumps(b, sort_keys=True)
    add_ads_endpoints(b, [("127.0.0.1", 5678)])
    assert json.dumps(b, sort_keys=True) == before


def test_several_instances_are_one_health_checked_cluster_that_envoy_accepts(tmp_path: Path) -> None:
    b = _bootstrap()
    add_ads_endpoints(b, [("127.0.0.1", 5678), ("127.0.0.1", 6678), ("127.0.0.2", 5678)])
    cluster = b["static_resources"]["clusters"][0]  # type: ignore[index]
    addresses = [
        e["endpoint"]["address"]["socket_address"] for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ]
    assert [(a["address"], a["port_value"]) for a in addresses] == [
        ("127.0.0.1", 5678),
        ("127.0.0.1", 6678),
        ("127.0.0.2", 5678),
    ]
    assert cluster["health_checks"][0]["tcp_health_check"] == {}
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(b))
    r = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


class FakeCp:
    """A real HTTP server answering POST /bootstrap with a fixed status (uvicorn in a thread)."""

    def __init__(self, status: int, xds_port: int) -> None:
        import threading

        import uvicorn

        app = FastAPI()

        @app.post("/bootstrap")
        async def bootstrap() -> JSONResponse:
            if status != 200:
                return JSONResponse({"title": "refused", "details": "no"}, status_code=status)
            return JSONResponse({"bootstrap": _bootstrap(), "xds": {"host": "127.0.0.1", "port": xds_port}})

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        from tests.helpers import wait_until

        wait_until(lambda: self.server.started, timeout=20, what="fake CP listening")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


REQUEST = BootstrapRequest(
    proxy_type="dataplane", dataplane={}, token=None, xds_mode="delta", admin_port=9901, version={}
)


async def test_bootstrap_from_the_first_instance_that_answers_and_every_ads_address() -> None:
    live = FakeCp(200, xds_port=7001)
    other = FakeCp(200, xds_port=7002)
    dead = f"http://127.0.0.1:{free_port()}"
    try:
        url, response = await fetch_from_any([dead, live.url, other.url], REQUEST, give_up_after=30)
        assert url == live.url and response.xds_port == 7001
        endpoints = await ads_endpoints([dead, live.url, other.url], url, response, REQUEST)
        assert endpoints == [("127.0.0.1", 7001), ("127.0.0.1", 7002)]  # the dead one guessed as 7001: a duplicate
    finally:
        live.close()
        other.close()


async def test_a_refusal_from_an_instance_is_final() -> None:
    refusing = FakeCp(403, xds_port=7001)
    try:
        with pytest.raises(CpRejected):
            await fetch_from_any([refusing.url, f"http://127.0.0.1:{free_port()}"], REQUEST, give_up_after=30)
    finally:
        refusing.close()
