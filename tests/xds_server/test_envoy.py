"""The ADS server driving a real Envoy, SotW and delta: traffic, endpoint switch, CDS change without warming
delay, and a NACK recorded in the stream status."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.xds.server import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot, TypeStatus
from tests.helpers import free_port, wait_until

from .envoy_util import AdsServerThread, EnvoyProcess, HttpBackend, ads_bootstrap, http_get
from .xds_resources import cla, cluster, listener, route

pytestmark = pytest.mark.envoy

NODE = "default.web-1"


@pytest.fixture
def backends() -> Iterator[tuple[HttpBackend, HttpBackend]]:
    a, b = HttpBackend("A"), HttpBackend("B")
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def ads() -> Iterator[AdsServerThread]:
    server = AdsServerThread().start()
    yield server
    server.stop()


def snapshot(listen_port: int, backend_port: int, *, timeout_s: int = 1, timeout_nanos: int = 0) -> Snapshot:
    return Snapshot.build(
        listeners=[listener("inbound", listen_port, "web-routes")],
        routes=[route("web-routes", "web")],
        clusters=[cluster("web", timeout_s=timeout_s, timeout_nanos=timeout_nanos)],
        endpoints=[cla("web", backend_port)],
    )


def body(port: int) -> str:
    status, text = http_get(port)
    return text if status == 200 else f"HTTP {status}: {text}"


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_envoy_over_ads(
    delta: bool, tmp_path: Path, ads: AdsServerThread, backends: tuple[HttpBackend, HttpBackend]
) -> None:
    a, b = backends
    listen = free_port()
    s1 = snapshot(listen, a.port)
    ads.set_snapshot(NODE, s1)
    bootstrap = ads_bootstrap(NODE, "web", xds_port=ads.port, admin_port=free_port(), delta=delta)
    with EnvoyProcess(bootstrap, tmp_path / "envoy").start() as envoy:
        envoy.wait_ready()

        def types() -> dict[str, TypeStatus]:
            st = ads.latest.get(NODE)
            return dict(st.types) if st is not None else {}

        def acked(type_url: str, version: str) -> bool:
            t = types().get(type_url)
            return t is not None and t.last_acked_version == version and t.in_sync

        wait_until(
            lambda: all(acked(t, s1.version(t)) for t in (CLUSTER, ENDPOINT, LISTENER, ROUTE)), what="initial ACKs"
        )
        assert ads.latest[NODE].mode == ("delta" if delta else "sotw")
        assert wait_until(lambda: body(listen) == "backend=A", what="traffic to A")

        # EDS: switch the endpoint to backend B.
        s2 = snapshot(listen, b.port)
        ads.set_snapshot(NODE, s2)
        wait_until(lambda: body(listen) == "backend=B", what="traffic to B")
        wait_until(lambda: acked(ENDPOINT, s2.version(ENDPOINT)), what="EDS ACK")

        # CDS: change the cluster. Without re-sending its CLA Envoy would keep it warming for 15 s and
        # hold the CDS ACK that long; here both happen at once.
        s3 = snapshot(listen, b.port, timeout_s=2)
        t0 = time.monotonic()
        ads.set_snapshot(NODE, s3)
        wait_until(lambda: acked(CLUSTER, s3.version(CLUSTER)), timeout=5, what="CDS ACK after cluster change")
        assert time.monotonic() - t0 < 5
        assert body(listen) == "backend=B"
        dump = envoy.config_dump("dynamic_active_clusters")
        [active] = [c for c in dump["configs"] if c["cluster"]["name"] == "web"]
        assert active["cluster"]["connect_timeout"] == "2s"
        assert envoy.config_dump("dynamic_warming_clusters").get("configs", []) == []

        # A cluster Envoy rejects (Duration nanos must be < 1e9): NACK recorded, old config keeps serving.
        bad = snapshot(listen, b.port, timeout_s=1, timeout_nanos=1_000_000_000)
        ads.set_snapshot(NODE, bad)

        def nacked() -> TypeStatus | None:
            t = types().get(CLUSTER)
            return t if t is not None and t.rejected and t.last_nack_version == bad.version(CLUSTER) else None

        st = wait_until(nacked, what="CDS NACK")
        assert st is not None
        assert st.nack_count == 1 and st.last_nack_error and "Duration" in st.last_nack_error
        assert st.last_acked_version == s3.version(CLUSTER) and st.last_nack_at is not None
        assert body(listen) == "backend=B"

        # A newer snapshot is accepted again.
        s4 = snapshot(listen, a.port, timeout_s=3)
        ads.set_snapshot(NODE, s4)
        wait_until(lambda: acked(CLUSTER, s4.version(CLUSTER)), timeout=5, what="CDS ACK after the fix")
        wait_until(lambda: body(listen) == "backend=A", what="traffic back to A")
        assert types()[CLUSTER].nack_count == 1
    # Envoy is gone: its stream is closed and forgotten.
    wait_until(lambda: ads.run(lambda: ads.servicer.open_streams) == 0, what="stream closed")
