"""What the REST API app is built from: one typed ``ApiDependencies`` value, and the interfaces in it.

``create_app`` takes an ``ApiDependencies`` and hands each router only the fields it uses. The app
holds no global state: everything it serves comes from here. What a control plane's role adds is
optional and typed by a small protocol its implementer satisfies structurally:

- ``ProxyEndpoints`` (``atoll.proxies.endpoints.ProxyApi``): bootstrap, agents' health and admin relay,
  live insights and served xDS config of the proxies connected to this CP (zone, standalone).
- ``TokenEndpoints`` (``atoll.security.TokenEndpoints``): issuing and revoking tokens.
- ``DataplaneInsights`` / ``ZoneInsights`` (``atoll.kds.GlobalInventory``): what a global CP knows
  of proxies and zones it does not serve itself.

``is_admin`` decides who is an admin (``atoll.security.AdminAuth`` in a CP; ``is_loopback_admin``
by default); it may raise ``Unauthenticated`` (401) itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request

from atoll.addresses import is_loopback_host
from atoll.api.body import DEFAULT_MAX_BODY_BYTES
from atoll.api.metrics import Metrics
from atoll.resources.defaults import initial_policies as default_initial_policies
from atoll.resources.meta import Resource
from atoll.resources.types import ResourceType
from atoll.store.protocol import Store

MODES = ("standalone", "zone", "global")

BootstrapHandler = Callable[[dict[str, Any], str], Awaitable[dict[str, Any]]]
"""Answers ``POST /bootstrap``: the request body and the host name the proxy used to reach this CP (so
the bootstrap can point ADS at the same host) in, the response body out; may raise ``InvalidInput``."""
AdminCheck = Callable[[Request], bool]
DataplaneInsights = Callable[[str, str], dict[str, Any] | None]
"""``(mesh, name) -> insight`` for CPs that serve no proxies themselves (global: synced insights)."""
ZoneInsights = Callable[[str], Awaitable[dict[str, Any]]]
"""``zone name -> zoneInsight`` for ``GET /zones+insights`` (global: ``atoll.kds.GlobalInventory``)."""
InitialPolicies = Callable[[Resource[Any]], Iterable[Resource[Any]]]


class ProxyEndpoints(Protocol):
    """What a CP that serves proxies adds to the API (``atoll.proxies`` implements it)."""

    async def bootstrap(self, body: dict[str, Any], cp_host: str) -> dict[str, Any]: ...

    async def report_health(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def insight(self, mesh: str, name: str) -> dict[str, Any] | None: ...

    def xds_config(self, mesh: str, name: str) -> dict[str, Any] | None: ...

    async def poll_admin_request(
        self, mesh: str, name: str, wait: float, token: str | None = None
    ) -> dict[str, Any] | None: ...

    async def admin_response(self, body: dict[str, Any], token: str | None = None) -> None: ...

    async def admin(self, mesh: str, name: str, path: str) -> Any: ...

    def egress_insight(self, name: str) -> dict[str, Any]: ...

    def ingress_insight(self, name: str) -> dict[str, Any] | None: ...


class TokenEndpoints(Protocol):
    """What a CP that issues tokens adds to the API (``atoll.security`` implements it)."""

    async def issue_dataplane(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def issue_zone(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def revoke(self, body: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ApiInfo:
    """What ``GET /`` reports, and the role that decides which writes this API accepts."""

    version: str
    mode: str = "standalone"  # standalone | zone | global
    zone: str | None = None
    # A zone CP connected to a global CP: global-owned types (Meshes, policies) are read-only here.
    federated: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    @property
    def no_proxies(self) -> str:
        """Why this CP answers 404 to the proxies' endpoints when it serves none."""
        return "this control plane serves no proxies" + (
            ": proxies connect to a zone control plane, not to global" if self.mode == "global" else ""
        )


def is_loopback_admin(request: Request) -> bool:
    """Admin check until tokens exist: a client on a loopback address is an admin."""
    client = request.client
    return client is not None and is_loopback_host(client.host)


@dataclass(frozen=True, slots=True)
class ApiDependencies:
    """Everything the REST API app serves from. Only ``store`` and ``info`` are required."""

    store: Store
    info: ApiInfo
    proxies: ProxyEndpoints | None = None
    # Answers POST /bootstrap; defaults to ``proxies.bootstrap``.
    bootstrap: BootstrapHandler | None = None
    tokens: TokenEndpoints | None = None
    dataplane_insights: DataplaneInsights | None = None
    zone_insights: ZoneInsights | None = None
    metrics: Metrics | None = None
    is_admin: AdminCheck = is_loopback_admin
    initial_policies: InitialPolicies = default_initial_policies
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # GET /control-planes: this CP's instance registry (``atoll.cp.instances``); 404 without.
    control_planes: Callable[[], dict[str, Any]] | None = None
    # The resource types served; ``None``: every registered type (read when the app is built).
    types: tuple[ResourceType, ...] | None = None

    def bootstrap_handler(self) -> BootstrapHandler | None:
        if self.bootstrap is not None:
            return self.bootstrap
        return self.proxies.bootstrap if self.proxies is not None else None
