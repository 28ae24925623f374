"""Policy inspection routes: why a proxy behaves as it does, and which proxies a policy selects.

- ``GET /meshes/{mesh}/dataplanes/{name}/policies+explained`` (``atoll inspect dataplane NAME
  --policies``): per inbound and outbound of the Dataplane, per policy kind, the policy items that
  apply in merge order (the last one wins) and the settings they fold into
  (``atoll.topology.explain.explain_proxy``).
- ``GET /meshes/{mesh}/dataplanes/{name}/policies`` (Kuma's path, ``kumactl inspect dataplane NAME``):
  the same explanation in the shape kumactl 2.14 reads, each inbound and outbound with the policies
  matched there by kind (``atoll.api.kuma_shapes.dataplane_inspect``). One computation answers both.
- ``GET /meshes/{mesh}/{plural}/{name}/_resources/dataplanes`` (a policy type's plural): the
  Dataplanes the policy selects, with the inbounds and outbounds its items apply to
  (``atoll.topology.explain.policy_reach``).

Both read the mesh's Dataplanes and policies from the store and run the selection and folding the
generators run (``atoll.topology.matching``), so the answer is what the proxies are given. Any CP
answers: a zone or standalone CP for its own proxies, a global CP for every zone's (their Dataplanes
are synced up). A global CP's copy of a zone's Dataplane (``web-1-<hash>``) is matched under the name
its zone knows (``atoll.topology.explain.zone_name``), so it shows what that zone's CP gives it:
policies are the same everywhere once synced. The mesh (404 naming ``mesh``), the Dataplane or policy (404) must exist;
the plural must name a policy type (404 naming the known ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from atoll.api import openapi, paths
from atoll.api.errors import HttpError
from atoll.api.kuma_shapes import dataplane_inspect
from atoll.api.wire import require_mesh, respond
from atoll.resources.meta import Resource
from atoll.resources.types import ResourceType, types_where
from atoll.store.protocol import ListFilter, Store
from atoll.topology.explain import ProxyExplanation, explain_proxy, policy_reach, to_json
from atoll.topology.matching import sort_policies


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRoutes:
    """The handlers of the policy inspection routes."""

    store: Store

    async def _all(self, type_name: str, mesh: str) -> list[Resource[Any]]:
        return list((await self.store.list(ListFilter(type=type_name, mesh=mesh))).items)

    async def _explain(self, request: Request) -> tuple[ProxyExplanation, list[Resource[Any]]]:
        """The explanation of the path's Dataplane, and the mesh's policies it was made from."""
        mesh, name = request.path_params["mesh"], request.path_params["name"]
        await require_mesh(self.store, mesh)
        dataplane = await self.store.get("Dataplane", name, mesh)
        policies = [p for rt in types_where(policy=True) for p in await self._all(rt.name, mesh)]
        return explain_proxy(dataplane, sort_policies(policies)), policies

    async def dataplane_policies(self, request: Request) -> Response:
        explanation, _ = await self._explain(request)
        return respond(request, to_json(explanation))

    async def kuma_dataplane_policies(self, request: Request) -> Response:
        explanation, policies = await self._explain(request)
        by_key = {(p.type, p.name): p for p in policies}
        return respond(request, dataplane_inspect(explanation, by_key))

    async def policy_dataplanes(self, request: Request) -> Response:
        mesh, plural, name = (request.path_params[k] for k in ("mesh", "plural", "name"))
        rt = _policy_type(plural)
        await require_mesh(self.store, mesh)
        policy = await self.store.get(rt.name, name, mesh)
        routes = await self._all("MeshHTTPRoute", mesh)  # a policy may target one
        reach = policy_reach(policy, await self._all("Dataplane", mesh), routes)
        body = {"type": rt.name, "mesh": mesh, "name": name, "total": len(reach), "items": to_json(reach)}
        return respond(request, body)


def _policy_type(plural: str) -> ResourceType:
    policies = list(types_where(policy=True))
    for rt in policies:
        if rt.plural == plural:
            return rt
    known = ", ".join(rt.plural for rt in policies)
    raise HttpError(404, "unknown policy type", f'no policy type "{plural}"; known: {known}')


def add_policy_routes(router: APIRouter, routes: PolicyRoutes) -> None:
    """The policy inspection routes; add them before ``resources.add_fallback_routes``."""
    for path, endpoint, params, summary in (
        (
            paths.DATAPLANE_POLICIES,
            routes.dataplane_policies,
            [openapi.MESH, openapi.name_param("Dataplane")],
            "The policies shaping each inbound and outbound of a proxy, in merge order, and their settings",
        ),
        (
            paths.KUMA_DATAPLANE_POLICIES,
            routes.kuma_dataplane_policies,
            [openapi.MESH, openapi.name_param("Dataplane")],
            "The policies matched at each inbound and outbound of a proxy, by kind (Kuma's shape)",
        ),
        (
            paths.POLICY_DATAPLANES,
            routes.policy_dataplanes,
            [openapi.MESH, openapi.POLICY_PLURAL, openapi.name_param("policy")],
            "The Dataplanes a policy selects, and the inbounds and outbounds it applies to",
        ),
    ):
        extra = openapi.operation(params, yaml=True)
        router.add_api_route(path, endpoint, methods=["GET"], summary=summary, openapi_extra=extra)
