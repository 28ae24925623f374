"""A whole multi-zone deployment as real processes on loopback, for end-to-end tests.

``MultiZone`` starts a global CP and zone CPs (each its own process and SQLite store, zones dialing
global's KDS over TLS with zone tokens issued by global), zone ingresses and sidecars (``atoll dp run``
with tokens from global), and stops them all. Everything is addressed by name so tests read like the
deployment they describe. ``ingress``, ``egress`` and ``service`` take ``runner``: what runs the proxy,
Atoll's agent by default, or anything built like it (``tests.compat.kuma_dp_process.KumaDp``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.mesh import Agent, CpProcess
from tests.helpers import HttpBackend, free_port, wait_until

Runner = Callable[..., Any]
"""Builds a proxy like ``Agent(cp, workdir, document, token=..., proxy_type=...)``; has ``start``/``stop``."""


class MultiZone:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.kds_port = free_port()
        self.glob = CpProcess(
            workdir,
            name="global",
            env={"ATOLL_MODE": "global", "ATOLL_KDS_PORT": str(self.kds_port), "ATOLL_AUTH": "token"},
        )
        self.zones: dict[str, CpProcess] = {}
        self.agents: dict[str, Agent] = {}
        self.apps: dict[str, HttpBackend] = {}
        self.ingress_ports: dict[str, int] = {}
        self.egress_ports: dict[str, int] = {}

    # --- control planes -------------------------------------------------------------------------

    def start_global(self) -> None:
        self.glob.start()

    def add_zone(self, zone: str) -> CpProcess:
        token = self.workdir / f"{zone}.zone-token"
        token.write_text(self.glob.post("/tokens/zone", {"zone": zone, "scope": ["cp", "ingress"]})["token"])
        cp = CpProcess(
            self.workdir,
            name=zone,
            env={
                "ATOLL_MODE": "zone",
                "ATOLL_ZONE": zone,
                "ATOLL_GLOBAL_ADDRESS": f"grpcs://127.0.0.1:{self.kds_port}",
                "ATOLL_ZONE_TOKEN_FILE": str(token),
                "ATOLL_GLOBAL_CA_FILE": str(self.glob.data_dir / "kds-tls.crt"),
                "ATOLL_AUTH": "token",
            },
        )
        self.zones[zone] = cp.start()
        wait_until(lambda: self.zone_online(zone), timeout=30, what=f"{zone} online at global")
        return cp

    def zone_online(self, zone: str) -> bool:
        items = self.glob.get("/zones+insights")["items"]
        return any(i["name"] == zone and i["zoneInsight"]["online"] for i in items)

    def zone_insight(self, zone: str) -> dict[str, Any]:
        for i in self.glob.get("/zones+insights")["items"]:
            if i["name"] == zone:
                return dict(i["zoneInsight"])
        return {}

    def wait_synced(self, zone: str, path: str, what: str, timeout: float = 20) -> Any:
        return wait_until(lambda: _get_or_none(self.zones[zone], path), timeout=timeout, what=f"{what} in {zone}")

    # --- proxies --------------------------------------------------------------------------------

    def ingress(self, zone: str, runner: Runner | None = None) -> Agent:
        port = free_port()
        self.ingress_ports[zone] = port
        doc = {
            "type": "ZoneIngress",
            "name": f"ingress-{zone}",
            "networking": {
                "address": "127.0.0.1",
                "port": port,
                "advertisedAddress": "127.0.0.1",
                "advertisedPort": port,
            },
        }
        token = self.glob.post("/tokens/zone", {"zone": zone, "scope": ["ingress"]})["token"]
        return self._agent(zone, doc, token, proxy_type="ingress", runner=runner)

    def egress(self, zone: str, name: str | None = None, runner: Runner | None = None) -> Agent:
        """A zone egress in ``zone`` (``atoll dp run --proxy-type egress``, zone token scope egress)."""
        port = free_port()
        self.egress_ports[zone] = port
        doc = {
            "type": "ZoneEgress",
            "name": name or f"egress-{zone}",
            "networking": {"address": "127.0.0.1", "port": port},
        }
        token = self.glob.post("/tokens/zone", {"zone": zone, "scope": ["egress"]})["token"]
        return self._agent(zone, doc, token, proxy_type="egress", runner=runner)

    def service(
        self,
        zone: str,
        name: str,
        service: str,
        *,
        mesh: str = "default",
        outbound: dict[str, int] | None = None,
        protocol: str = "http",
        label: str | None = None,
        token: str | None = None,
        tags: dict[str, str] | None = None,
        runner: Runner | None = None,
    ) -> Agent:
        app = HttpBackend(label or name)
        self.apps[name] = app
        doc = {
            "type": "Dataplane",
            "mesh": mesh,
            "name": name,
            "networking": {
                "address": "127.0.0.1",
                "inbound": [
                    {
                        "port": free_port(),
                        "servicePort": app.port,
                        "tags": {"kuma.io/service": service, "kuma.io/protocol": protocol, **(tags or {})},
                    }
                ],
                "outbound": [{"port": p, "tags": {"kuma.io/service": s}} for s, p in (outbound or {}).items()],
            },
        }
        if token is None:
            token = self.token(mesh, name)
        return self._agent(zone, doc, token, runner=runner)

    def token(self, mesh: str, name: str) -> str:
        """A dataplane token, issued by global (its signing key reaches the zones over KDS)."""
        return str(self.glob.post("/tokens/dataplane", {"mesh": mesh, "name": name})["token"])

    def _agent(
        self, zone: str, doc: dict[str, Any], token: str, proxy_type: str = "dataplane", runner: Runner | None = None
    ) -> Agent:
        # The token was signed at global; the zone verifies it with the key synced to it over KDS.
        if proxy_type in ("ingress", "egress"):
            self.wait_synced(zone, "/globalsecrets/zone-token-signing-key-0001", "the zone token signing key")
        elif self.glob.proc is not None:
            mesh = doc["mesh"]
            wait_until(
                lambda: any(
                    i["name"].startswith(f"dataplane-token-signing-key-{mesh}")
                    for i in (_get_or_none(self.zones[zone], f"/meshes/{mesh}/secrets") or {}).get("items", [])
                ),
                timeout=20,
                what=f"the dataplane token signing key of {mesh} in {zone}",
            )
        agent = (runner or Agent)(self.zones[zone], self.workdir, doc, token=token, proxy_type=proxy_type)
        self.agents[str(doc["name"])] = agent
        return agent.start()

    def stop_agent(self, name: str) -> None:
        self.agents[name].stop()

    def restart_agent(self, name: str) -> None:
        self.agents[name].start()

    # --- teardown -------------------------------------------------------------------------------

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        for cp in self.zones.values():
            cp.stop()
        self.glob.stop()
        for app in self.apps.values():
            app.stop()

    def dump_logs(self) -> str:
        parts = []
        for p in sorted(self.workdir.glob("*.log")):
            parts.append(f"--- {p.name}\n" + p.read_text(errors="replace")[-1500:])
        return "\n".join(parts)


def _get_or_none(cp: CpProcess, path: str) -> Any:
    from tests.e2e.mesh import http_json

    status, body = http_json("GET", cp.url + path)
    return body if status == 200 else None


def mtls_mesh(name: str = "default") -> dict[str, Any]:
    return {
        "type": "Mesh",
        "name": name,
        "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]},
    }


def allow_all(mesh: str = "default") -> dict[str, Any]:
    return {
        "type": "MeshTrafficPermission",
        "mesh": mesh,
        "name": "allow-all",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}],
        },
    }


__all__ = ["MultiZone", "allow_all", "json", "mtls_mesh"]
