"""Fail-over (b): a whole zone becomes unreachable. zone-2 lives on its own network host (a network
namespace joined by a veth pair); cutting the link leaves zone-1's frontend with an ingress endpoint it
cannot reach, and within seconds it stops sending there (outlier detection on ingress endpoints, on by
default) — with no config change from any control plane. When the link returns, so does the traffic."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.mesh import Agent, CpProcess, call
from tests.e2e.multizone import allow_all, mtls_mesh
from tests.e2e.netns import ZoneHost, available
from tests.helpers import HttpBackend, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]

WHY_NOT = available()


@pytest.fixture
def zone2_host() -> Iterator[ZoneHost]:
    host = ZoneHost("z2")
    try:
        yield host
    finally:
        host.close()


@pytest.mark.skipif(WHY_NOT is not None, reason=f"zones as network hosts: {WHY_NOT}")
def test_unreachable_zone_fails_over_to_local_and_back(zone2_host: ZoneHost, tmp_path: Path) -> None:
    from atoll.pki import generate_self_signed

    started: list[CpProcess | Agent] = []
    apps: list[HttpBackend] = []
    try:
        # Global and zone-1 on this host; global's KDS also listens on the veth, with a certificate for it.
        from datetime import UTC, datetime, timedelta

        cert_pem, key_pem = generate_self_signed(
            ["127.0.0.1", zone2_host.outer_ip], valid_for=timedelta(hours=1), now=datetime.now(UTC)
        )
        (tmp_path / "kds.crt").write_text(cert_pem)
        (tmp_path / "kds.key").write_text(key_pem)
        kds = free_port()
        glob = CpProcess(
            tmp_path,
            name="global",
            env={
                "ATOLL_MODE": "global",
                "ATOLL_KDS_PORT": str(kds),
                "ATOLL_KDS_HOST": "0.0.0.0",
                "ATOLL_KDS_TLS_CERT": str(tmp_path / "kds.crt"),
                "ATOLL_KDS_TLS_KEY": str(tmp_path / "kds.key"),
                "ATOLL_AUTH": "token",
            },
        ).start()
        started.append(glob)
        glob.put(mtls_mesh())
        glob.put(allow_all())

        def zone(name: str, *, remote: bool) -> CpProcess:
            token = tmp_path / f"{name}.token"
            token.write_text(glob.post("/tokens/zone", {"zone": name, "scope": ["cp", "ingress"]})["token"])
            env = {
                "ATOLL_MODE": "zone",
                "ATOLL_ZONE": name,
                "ATOLL_GLOBAL_ADDRESS": f"grpcs://{zone2_host.outer_ip if remote else '127.0.0.1'}:{kds}",
                "ATOLL_ZONE_TOKEN_FILE": str(token),
                "ATOLL_GLOBAL_CA_FILE": str(tmp_path / "kds.crt"),
                "ATOLL_AUTH": "token",
            }
            if remote:
                env.update(
                    {"ATOLL_API_HOST": "0.0.0.0", "ATOLL_DIAGNOSTICS_HOST": "0.0.0.0", "ATOLL_XDS_HOST": "0.0.0.0"}
                )
            cp = CpProcess(
                tmp_path,
                name=name,
                env=env,
                prefix=zone2_host.prefix if remote else (),
                host=zone2_host.inner_ip if remote else "127.0.0.1",
            ).start()
            started.append(cp)
            return cp

        z1, z2 = zone("zone-1", remote=False), zone("zone-2", remote=True)

        def agent(cp: CpProcess, doc: dict, *, ingress: bool = False, remote: bool = False) -> Agent:
            if ingress:
                token = glob.post("/tokens/zone", {"zone": cp.name, "scope": ["ingress"]})["token"]
            else:
                token = glob.post("/tokens/dataplane", {"mesh": "default", "name": doc["name"]})["token"]
            a = Agent(
                cp,
                tmp_path,
                doc,
                token=token,
                proxy_type="ingress" if ingress else "dataplane",
                prefix=zone2_host.prefix if remote else (),
                # zone-2 binds ADS on 0.0.0.0: TLS by default, verified with its generated certificate
                extra_args=["--ca-file", str(cp.data_dir / "xds-tls.crt")] if remote else (),
            )
            started.append(a)
            # The zone may not have global's signing keys yet: retry the start until it is let in.
            wait_until(lambda: _try_start(a), timeout=30, what=f"{doc['name']} started")
            return a

        def dp(name: str, app_port: int, outbound: dict[str, int] | None = None, service: str = "backend") -> dict:
            return {
                "type": "Dataplane",
                "mesh": "default",
                "name": name,
                "networking": {
                    "address": "127.0.0.1",
                    "inbound": [
                        {
                            "port": free_port(),
                            "servicePort": app_port,
                            "tags": {"kuma.io/service": service, "kuma.io/protocol": "http"},
                        }
                    ],
                    "outbound": [{"port": p, "tags": {"kuma.io/service": s}} for s, p in (outbound or {}).items()],
                },
            }

        # zone-2 (remote host): ingress advertised on the veth address, two backends.
        zi_port = free_port()
        agent(
            z2,
            {
                "type": "ZoneIngress",
                "name": "ingress-zone-2",
                "networking": {
                    "address": "0.0.0.0",
                    "port": zi_port,
                    "advertisedAddress": zone2_host.inner_ip,
                    "advertisedPort": zi_port,
                },
            },
            ingress=True,
            remote=True,
        )
        for name in ("backend-2a", "backend-2b"):
            port = free_port()
            zone2_host.app(port, name, tmp_path / f"{name}-app.log")
            agent(z2, dp(name, port), remote=True)
        # zone-1 (this host): one backend and the frontend.
        b1 = HttpBackend("backend-1")
        apps.append(b1)
        agent(z1, dp("backend-1", b1.port))
        out = free_port()
        front_app = HttpBackend("frontend")
        apps.append(front_app)
        agent(z1, dp("frontend", front_app.port, {"backend": out}, service="frontend"))

        def zones_seen(n: int = 30) -> Counter[str]:
            return Counter(
                "zone-1" if b == "backend=backend-1" else "zone-2" if b.startswith("backend=backend-2") else b
                for b in (call(out) for _ in range(n))
            )

        wait_until(lambda: set(zones_seen()) == {"zone-1", "zone-2"}, timeout=40, what="traffic to both zones")

        # Cut zone-2 off. No control plane learns of it in time: zone-1's sidecar must find out itself.
        zone2_host.cut()
        t0 = time.monotonic()
        answers: Counter[str] = Counter()

        def local_only() -> bool:
            window = zones_seen(20)
            answers.update(window)
            return set(window) == {"zone-1"}

        wait_until(local_only, timeout=30, interval=0.0, what="traffic stays in zone-1")
        took = time.monotonic() - t0
        errors = sum(n for k, n in answers.items() if not k.startswith("zone-"))
        print(f"fail-over (b): local-only after {took:.1f}s; {errors} failed of {sum(answers.values())} requests")
        assert took < 15, f"took {took:.1f}s to stop sending to an unreachable zone"
        assert set(zones_seen(50)) == {"zone-1"}

        zone2_host.restore()
        wait_until(lambda: "zone-2" in zones_seen(), timeout=60, what="zone-2 back in rotation")
    finally:
        for p in reversed(started):
            p.stop()
        for app in apps:
            app.stop()


def _try_start(a: Agent) -> bool:
    """Start the agent; False (and stopped) if it exited, e.g. refused before the zone had the keys."""
    a.start(wait=False)
    try:
        wait_until(a.is_ready, timeout=20, what=f"agent {a.name} ready")
    except AssertionError:
        a.stop()
        return False
    return True
