"""The REST side of serving proxies: what ``/bootstrap`` (Atoll's agent's request or ``kuma-dp``'s),
``/dp/health``, insights, the served xDS config and the admin relay answer
(``atoll.api.deps.ProxyEndpoints``).

``ProxyApi`` holds the parts it reads — the lifecycle (bootstrap, health, token checks), the
inventory (what each proxy's streams are doing), the reconciler (what an egress routes), the snapshot
cache (what each proxy is served) and the admin request queue — and keeps no state of its own. The
control plane wires it (``atoll.cp.xds``). Private keys never leave the CP through it: ``private_key``
fields of served secrets read ``[redacted]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atoll.errors import FieldError, InvalidInput, NotFound
from atoll.proxies.admin_requests import AdminRequestQueue, RelayTimeout
from atoll.proxies.inventory import Inventory
from atoll.proxies.kuma_bootstrap import KumaBootstrap, is_kuma_request
from atoll.proxies.lifecycle import DataplaneLifecycle
from atoll.proxies.reconciler import ProxyReconciler
from atoll.resources.proxy_id import NodeId
from atoll.topology.egress import EgressView
from atoll.xds import vocabulary as xds
from atoll.xds.generate import message_to_dict
from atoll.xds.server import PUSH_ORDER, SnapshotCache

_SHORT = {
    xds.LISTENER: "listeners",
    xds.ROUTE: "routes",
    xds.CLUSTER: "clusters",
    xds.ENDPOINT: "endpoints",
    xds.SECRET: "secrets",
}


def _redact(value: Any) -> Any:
    """Private keys never leave the CP through inspection: ``private_key`` becomes ``[redacted]``."""
    if isinstance(value, dict):
        return {k: ("[redacted]" if k == "private_key" else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ProxyApi:
    """``atoll.api.deps.ProxyEndpoints`` over the parts that serve proxies (module docstring)."""

    lifecycle: DataplaneLifecycle
    inventory: Inventory
    reconciler: ProxyReconciler
    cache: SnapshotCache
    admin_requests: AdminRequestQueue
    ads_cert_pem: str | None = None  # the certificate ADS serves (TLS), checked against kuma-dp's caCert

    async def bootstrap(self, body: dict[str, Any], cp_host: str) -> dict[str, Any]:
        """Atoll's agent's request, or Kuma's ``kuma-dp`` request (translated by ``kuma_bootstrap``)."""
        if is_kuma_request(body):
            return await KumaBootstrap(self.lifecycle, self.ads_cert_pem).answer(body, cp_host)
        return await self.lifecycle.bootstrap(body, cp_host)

    async def report_health(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.lifecycle.report_health(body)

    def insight(self, mesh: str, name: str) -> dict[str, Any] | None:
        i = self.inventory.get(str(NodeId.dataplane(mesh, name)))
        return i.to_json() if i is not None else None

    def ingress_insight(self, name: str) -> dict[str, Any] | None:
        """Zone ingress ``name`` at this CP: its proxy's state, or ``None`` if it never connected here."""
        i = self.inventory.get(str(NodeId.ingress(name)))
        return i.to_json() if i is not None else None

    def egress_insight(self, name: str) -> dict[str, Any]:
        """Zone egress ``name`` at this CP: its proxy's state, and what it routes (SNI -> where)."""
        i = self.inventory.get(str(NodeId.egress(name)))
        out: dict[str, Any] = i.to_json() if i is not None else {"online": False}
        view = self.reconciler.egress_view(name)
        if view is not None:
            out.update(_egress_routes(view))
        return out

    def xds_config(self, mesh: str, name: str) -> dict[str, Any] | None:
        snapshot = self.cache.get(str(NodeId.dataplane(mesh, name)))
        if snapshot is None:
            return None
        return {
            _SHORT[t]: [_redact(message_to_dict(vr.message)) for _, vr in sorted(snapshot.resources(t).items())]
            for t in PUSH_ORDER
        }

    async def poll_admin_request(
        self, mesh: str, name: str, wait: float, token: str | None = None
    ) -> dict[str, Any] | None:
        """The agent's long poll: the next admin request for its proxy, or None."""
        await self.lifecycle.verify_dataplane(token, mesh, name)
        req = await self.admin_requests.poll(str(NodeId.dataplane(mesh, name)), wait)
        return None if req is None else {"id": req.id, "path": req.path}

    async def admin_response(self, body: dict[str, Any], token: str | None = None) -> None:
        """An agent's answer ``{id, mesh, name, status, body}``: taken only with a dataplane token
        of ``mesh/name`` and only for a request sent to that proxy (``NotFound`` otherwise)."""
        rid, status, mesh, name = (body.get(k) for k in ("id", "status", "mesh", "name"))
        errors = [
            FieldError(k, "required: a string")
            for k, v in (("id", rid), ("mesh", mesh), ("name", name))
            if not isinstance(v, str) or not v
        ]
        if not isinstance(status, int) or isinstance(status, bool):
            errors.append(FieldError("status", "required: an HTTP status"))
        if errors:
            raise InvalidInput(errors, title="invalid admin response")
        assert isinstance(rid, str) and isinstance(mesh, str) and isinstance(name, str) and isinstance(status, int)
        await self.lifecycle.verify_dataplane(token, mesh, name)
        nid = str(NodeId.dataplane(mesh, name))
        if not self.admin_requests.answer(rid, nid, status, body.get("body")):
            raise NotFound(f"no admin request {rid} waits for an answer from proxy {nid}")

    async def admin(self, mesh: str, name: str, path: str) -> Any:
        """``path`` of the proxy's Envoy admin API, fetched through its agent."""
        nid = str(NodeId.dataplane(mesh, name))
        if not self.inventory.connected(nid):
            raise NotFound(f"proxy {nid} is not connected to this control plane")
        try:
            answer = await self.admin_requests.ask(nid, path)
        except RelayTimeout as e:
            raise NotFound(str(e)) from None
        return answer["body"]


def _egress_routes(view: EgressView) -> dict[str, Any]:
    """What an egress routes, for its insight: SNI pass-through to other zones, and ExternalServices."""
    return {
        "passThrough": [
            {"mesh": r.mesh, "service": r.service, "sni": r.sni, "zones": {e.zone: e.weight or 1 for e in r.endpoints}}
            for r in view.passthrough
        ],
        "externalServices": [
            {
                "mesh": r.mesh,
                "service": r.service,
                "sni": r.sni,
                "address": f"{r.external.host}:{r.external.port}",
                "tls": r.external.tls is not None,
                "permissions": [
                    {"policy": p.policy, "action": p.action, "from": dict(p.source)} for p in r.permissions
                ],
            }
            for r in view.externals
        ],
        "conflicts": list(view.conflicts),
    }
