"""The life of a proxy at its zone CP: bootstrap, registration on connect, health, removal.

1. ``bootstrap(body)`` (``POST /bootstrap``) validates the proxy's Dataplane (Universal document), the
   proxy type and xDS mode, checks the mesh exists, and returns an Envoy bootstrap whose node id is
   ``<mesh>.<name>`` and whose node metadata carries the Dataplane itself. Nothing is stored yet. When
   ADS speaks TLS (``xds_tls``) the request must carry ``caCert``, the PEM the proxy trusts for the CP
   (``atoll dp run --ca-file``): the bootstrap's ADS cluster verifies the CP with it — never with a
   certificate the CP hands out itself.
2. ``on_stream_open`` (ADS hook): the Dataplane from the node metadata is registered in the store
   (created, or updated when it changed) — so a proxy that reconnects to a restarted CP re-registers
   by itself. A second stream for a node id that is already connected is refused: two proxies cannot
   share an identity. The proxy's snapshot is generated before the hook returns.
3. ``report_health(body)`` (``POST /dp/health`` from the agent's probes) sets ``health.ready`` on the
   Dataplane's inbounds; the store change moves the endpoint out of (or back into) every proxy's EDS.
4. ``on_stream_close``: when a node's last stream closes, its snapshot is dropped and its Dataplane's
   removal timer started (``removal.RemovalTimers``: removed after a grace unless it reconnected, and
   only if a proxy registered it).

Zone ingresses and zone egresses go the same way with their own resource (ZoneIngress/ZoneEgress,
node ids ``ingress:<name>``/``egress:<name>``), a zone token of this zone with scope ``ingress`` or
``egress``, and ``zone`` forced to this CP's zone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from google.protobuf import json_format

from atoll.errors import AlreadyExists, Conflict, FieldError, Forbidden, InvalidInput, NotFound, Unauthenticated
from atoll.proxies.inventory import Inventory
from atoll.proxies.reconciler import ProxyKind, ProxyReconciler
from atoll.proxies.removal import MANAGED_LABEL, RemovalTimers
from atoll.resources import Resource, decode, encode, load_documents
from atoll.resources.codec import decode_spec
from atoll.resources.models.dataplane import DataplaneSpec
from atoll.resources.parsing import load_json
from atoll.resources.proxy_id import PROXY_TYPE_NAMES, MalformedNodeId, NodeId, ProxyType
from atoll.resources.types import get_type
from atoll.security import NoAuth, ProxyAuthenticator
from atoll.store import Store
from atoll.xds.generate import TOKEN_HEADER, envoy_bootstrap
from atoll.xds.server import StreamRejected, StreamStatus

log = logging.getLogger(__name__)

META_DATAPLANE = "atoll.dataplane"  # the proxy's resource (Dataplane or ZoneIngress), Universal JSON
META_PROXY_TYPE = "atoll.proxy-type"
XDS_MODES = ("sotw", "delta")


class DataplaneLifecycle:
    def __init__(
        self,
        store: Store,
        reconciler: ProxyReconciler,
        inventory: Inventory,
        removal: RemovalTimers,
        *,
        xds_port: int,
        xds_advertised_host: str | None = None,
        zone: str = "default",
        auth: ProxyAuthenticator | None = None,
        xds_tls: bool = False,
    ) -> None:
        self._store = store
        self._xds_tls = xds_tls
        self._reconciler = reconciler
        self._inventory = inventory
        inventory.config_errors = reconciler.config_error  # insights say why a proxy gets no config
        inventory.certificates = reconciler.identities.certificate  # and which certificate it holds
        self._removal = removal
        self._zone = zone
        self._auth: ProxyAuthenticator = auth or NoAuth()
        self._xds_host = xds_advertised_host
        self._xds_port = xds_port

    # --- bootstrap ------------------------------------------------------------------------------

    async def bootstrap(
        self,
        body: Mapping[str, Any],
        cp_host: str = "127.0.0.1",
        *,
        admin_socket: str | None = None,
        registers: bool = True,
    ) -> dict[str, Any]:
        """The Envoy bootstrap for a proxy; ADS is on ``xds_advertised_host`` or else the host name the
        proxy used to reach this CP (``cp_host``), at ``xds_port``. Envoy's admin listens on
        ``adminPort``, or on the Unix socket ``admin_socket`` when given (``kuma-dp``'s requests).
        ``registers=False`` (a Dataplane applied beforehand, started by name) leaves the Dataplane out of
        the node metadata, so the proxy is served the stored one and never registers (or removes) it."""
        errors: list[FieldError] = []
        proxy_type = body.get("proxyType", "dataplane")
        if proxy_type not in PROXY_TYPE_NAMES:
            errors.append(FieldError("proxyType", f'must be one of {", ".join(PROXY_TYPE_NAMES)}, got "{proxy_type}"'))
        mode = body.get("xdsMode", "delta")
        if mode not in XDS_MODES:
            errors.append(FieldError("xdsMode", f'must be "sotw" or "delta", got "{mode}"'))
        admin_port = body.get("adminPort", 9901)
        if not isinstance(admin_port, int) or isinstance(admin_port, bool) or not 1 <= admin_port <= 65535:
            errors.append(FieldError("adminPort", f"must be a port number 1..65535, got {admin_port!r}"))
        token = body.get("token")
        if token is not None and not isinstance(token, str):
            errors.append(FieldError("token", "must be a string"))
        ca_cert = body.get("caCert")
        if ca_cert is not None and (not isinstance(ca_cert, str) or "-----BEGIN CERTIFICATE-----" not in ca_cert):
            errors.append(FieldError("caCert", "must be a PEM certificate"))
        elif ca_cert is None and self._xds_tls:
            errors.append(
                FieldError("caCert", "required: ADS speaks TLS; give the CA that verifies it (atoll dp run --ca-file)")
            )
        doc = body.get("dataplane")
        dp: Resource[Any] | None = None
        if doc is None:
            errors.append(
                FieldError("dataplane", "required: the resource of this proxy (Dataplane, ZoneIngress or ZoneEgress)")
            )
        elif proxy_type in PROXY_TYPE_NAMES:
            try:
                dp = _decode_proxy_resource(doc, ProxyType(proxy_type))
            except InvalidInput as e:
                errors.extend(e.prefixed("dataplane").errors)
        if errors or dp is None:
            raise InvalidInput(errors, title="invalid bootstrap request")
        if dp.mesh is not None:
            await self._require_mesh(dp.mesh, "dataplane.mesh")
        await self.verify(token, dp)
        nid = str(_node_of(dp))
        if self._inventory.connected(nid):
            try:
                current = await self._store.get(dp.type, dp.name, dp.mesh)
            except NotFound:
                current = None
            if current is not None and _identity_spec(current) != _identity_spec(dp):
                raise Conflict(
                    f"{dp.type} {nid} is registered by a proxy that is connected now; two proxies cannot share a name"
                )
        xds_host = self._xds_host or cp_host
        bootstrap = envoy_bootstrap(
            node_id=nid,
            node_cluster=_first_service(dp) if dp.type == "Dataplane" else f"{proxy_type}-{self._zone}",
            xds_host=xds_host,
            xds_port=self._xds_port,
            ads=mode,
            admin_port=admin_port,
            metadata=_node_metadata(dp, proxy_type, registers=registers or dp.type != "Dataplane"),
            token=token,
            xds_tls_ca_pem=ca_cert if self._xds_tls else None,
            admin_pipe=admin_socket,
        )
        return {"bootstrap": bootstrap, "xds": {"host": xds_host, "port": self._xds_port, "tls": self._xds_tls}}

    async def stored_document(self, proxy_type: ProxyType, name: str, mesh: str | None) -> dict[str, Any]:
        """The Universal document of a proxy's resource as stored (applied before the proxy starts);
        ``NotFound`` if there is none."""
        stored: Resource[Any] = await self._store.get(proxy_type.resource_type, name, mesh)
        return encode(stored, with_times=False)

    async def verify(self, token: str | None, proxy: Resource[Any]) -> None:
        """The proxy's token must let it in: a dataplane token matching its mesh, name and tags, or a
        zone token of this zone with scope ``ingress`` (``egress``). ``Unauthenticated``/``Forbidden`` otherwise."""
        if proxy.type == "ZoneIngress":
            await self._auth.verify_zone(token, self._zone, "ingress")
        elif proxy.type == "ZoneEgress":
            await self._auth.verify_zone(token, self._zone, "egress")
        else:
            await self._auth.verify_dataplane(token, proxy)

    async def verify_dataplane(self, token: str | None, mesh: str, name: str) -> None:
        """``verify`` for the stored Dataplane ``mesh/name`` (``NotFound`` if there is none)."""
        await self.verify(token, await self._store.get("Dataplane", name, mesh))

    async def _verify_stream(self, token: str | None, proxy: Resource[Any]) -> None:
        try:
            await self.verify(token, proxy)
        except Unauthenticated as e:
            raise StreamRejected(grpc.StatusCode.UNAUTHENTICATED, str(e)) from None
        except Forbidden as e:
            raise StreamRejected(grpc.StatusCode.PERMISSION_DENIED, str(e)) from None

    async def _require_mesh(self, mesh: str, field: str) -> None:
        try:
            await self._store.get("Mesh", mesh)
        except NotFound:
            raise InvalidInput(FieldError(field, f'mesh "{mesh}" does not exist'), title="unknown mesh") from None

    # --- ADS hooks ------------------------------------------------------------------------------

    async def on_stream_open(self, node: base_pb2.Node, metadata: Mapping[str, str | bytes]) -> None:
        try:
            nid = NodeId.parse(node.id)
        except MalformedNodeId as e:
            raise StreamRejected(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        if self._inventory.connected(node.id):
            raise StreamRejected(
                grpc.StatusCode.PERMISSION_DENIED,
                f"proxy {nid} is already connected; two proxies cannot share a node id",
            )
        fields = json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}
        kind = ProxyKind.of(nid.type, proxyless=fields.get("atoll.proxyless") in ("true", True))
        token_value = metadata.get(TOKEN_HEADER)
        token = token_value.decode() if isinstance(token_value, bytes) else token_value
        if nid.mesh is not None:
            try:
                await self._require_mesh(nid.mesh, "node.id")
            except InvalidInput as e:
                raise StreamRejected(grpc.StatusCode.NOT_FOUND, str(e.errors[0])) from None
        stored = await self._registered(nid, kind, fields.get(META_DATAPLANE), token)
        self._removal.cancel(node.id)
        self._inventory.opened(node.id, envoy_version=_version(node), kind=kind.value)
        if stored.type == "Dataplane":
            self._reconciler.upsert_dataplane(stored)
            self._reconciler.flush()
        elif stored.type == "ZoneEgress":
            self._reconciler.upsert_egress(stored)
            self._reconciler.flush()
        else:
            self._reconciler.upsert_ingress(stored)
        if not self._reconciler.ensure(nid, kind):
            if self._reconciler.ready.is_set():
                log.warning("no configuration yet for %s: its mesh view is not loaded", nid)
            else:  # a restart under connected proxies: the first pass after loading serves them
                log.debug("%s connected while the store is loading: configured once it is", nid)

    async def _registered(self, nid: NodeId, kind: ProxyKind, raw: Any, token: str | None) -> Resource[Any]:
        """The proxy's resource, registered from its node metadata (``raw``) or, for a Dataplane
        started without it, as stored already; the token must let the proxy in."""
        if raw is not None:
            try:
                dp = _decode_proxy_resource(load_json(raw) if isinstance(raw, str) else raw, nid.type)
            except (InvalidInput, ValueError) as e:
                raise StreamRejected(
                    grpc.StatusCode.INVALID_ARGUMENT, f"invalid {nid.type.resource_type} in node metadata: {e}"
                ) from None
            if _node_of(dp) != nid:
                raise StreamRejected(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"node id {nid} does not match its {dp.type} {_node_of(dp)}",
                )
            await self._verify_stream(token, dp)
            return await self._register(dp)
        if nid.mesh is None:
            raise StreamRejected(
                grpc.StatusCode.INVALID_ARGUMENT, f"a zone {kind.value} must be started with `atoll dp run`"
            )
        try:
            stored: Resource[Any] = await self._store.get("Dataplane", nid.name, nid.mesh)
        except NotFound:
            raise StreamRejected(
                grpc.StatusCode.NOT_FOUND,
                f"no Dataplane {nid.name} in mesh {nid.mesh}: start the proxy with `atoll dp run`, "
                "or `atoll apply` its Dataplane first",
            ) from None
        await self._verify_stream(token, stored)
        return stored

    def on_stream_close(self, nid: str, stream_id: int) -> None:
        self._inventory.closed(nid)
        if self._inventory.connected(nid):
            return
        try:
            node = NodeId.parse(nid)
        except MalformedNodeId:
            return  # refused when it opened: nothing was registered for it
        self._reconciler.forget(node)
        self._removal.schedule(nid)

    def on_status(self, nid: str, status: StreamStatus) -> None:
        self._inventory.status(nid, status)

    async def _register(self, dp: Resource[Any]) -> Resource[Any]:
        labels = {**dp.meta.labels, MANAGED_LABEL: "dp"}
        for _ in range(5):
            try:
                current: Resource[Any] = await self._store.get(dp.type, dp.name, dp.mesh)
            except NotFound:
                try:
                    return await self._store.create(self._as_registered(dp, None).with_meta(labels=labels))
                except AlreadyExists:
                    continue
            wanted = self._as_registered(dp, current)
            if current.spec == wanted.spec and dict(current.meta.labels) == labels:
                return current
            try:
                return await self._store.update(current.with_spec(wanted.spec).with_meta(labels=labels))
            except (Conflict, NotFound):
                continue
        raise StreamRejected(
            grpc.StatusCode.UNAVAILABLE, "could not register the Dataplane: too many concurrent writes"
        )

    def _as_registered(self, r: Resource[Any], current: Resource[Any] | None) -> Resource[Any]:
        """A ZoneIngress (ZoneEgress) belongs to this zone, and its ``availableServices`` are the CP's."""
        if r.type == "ZoneEgress":
            data = r.spec_dict()
            data["zone"] = self._zone
            return r.with_spec(decode_spec(get_type("ZoneEgress"), data))
        if r.type != "ZoneIngress":
            return r
        data = r.spec_dict()
        data["zone"] = self._zone
        data.pop("availableServices", None)
        if current is not None and current.spec.available_services:
            data["availableServices"] = current.spec_dict().get("availableServices", [])
        return r.with_spec(decode_spec(get_type("ZoneIngress"), data))

    # --- health ---------------------------------------------------------------------------------

    async def report_health(self, body: Mapping[str, Any]) -> dict[str, Any]:
        errors: list[FieldError] = []
        mesh, name = body.get("mesh"), body.get("name")
        if not isinstance(mesh, str) or not mesh:
            errors.append(FieldError("mesh", "required"))
        if not isinstance(name, str) or not name:
            errors.append(FieldError("name", "required"))
        inbounds = body.get("inbounds")
        states: dict[int, bool] = {}
        if not isinstance(inbounds, list):
            errors.append(FieldError("inbounds", "required: a list of {port, ready}"))
        else:
            for i, item in enumerate(inbounds):
                port = item.get("port") if isinstance(item, Mapping) else None
                ready = item.get("ready") if isinstance(item, Mapping) else None
                if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                    errors.append(FieldError(f"inbounds[{i}].port", f"must be a port number, got {port!r}"))
                elif not isinstance(ready, bool):
                    errors.append(FieldError(f"inbounds[{i}].ready", f"must be true or false, got {ready!r}"))
                else:
                    states[port] = ready
        if errors:
            raise InvalidInput(errors, title="invalid health report")
        assert isinstance(mesh, str) and isinstance(name, str)
        token = body.get("token")
        await self.verify_dataplane(token if isinstance(token, str) else None, mesh, name)
        for _ in range(5):
            current: Resource[DataplaneSpec] = await self._store.get("Dataplane", name, mesh)
            data = current.spec_dict()
            known = {ib.get("port") for ib in data["networking"].get("inbound", [])}
            unknown = sorted(set(states) - known)
            if unknown:
                raise InvalidInput(
                    FieldError("inbounds", f"Dataplane {mesh}/{name} has no inbound on port(s) {unknown}"),
                    title="invalid health report",
                )
            changed = False
            for ib in data["networking"].get("inbound", []):
                if ib.get("port") in states:
                    want = states[ib["port"]]
                    have = (ib.get("health") or {}).get("ready", True)
                    if have != want:
                        ib["health"] = {"ready": want}
                        changed = True
            if not changed:
                return {"changed": False}
            spec = decode_spec(get_type("Dataplane"), data)
            try:
                await self._store.update(current.with_spec(spec))
                return {"changed": True}
            except Conflict:
                continue
        raise Conflict(f"Dataplane {mesh}/{name} changed too often to record its health")


def _node_metadata(dp: Resource[Any], proxy_type: str, *, registers: bool) -> dict[str, str]:
    meta = {META_PROXY_TYPE: proxy_type}
    if registers:
        meta[META_DATAPLANE] = json.dumps(encode(dp, with_times=False), sort_keys=True)
    return meta


def _node_of(r: Resource[Any]) -> NodeId:
    return NodeId.of(r.type, r.mesh, r.name)


def _identity_spec(r: Resource[Any]) -> Any:
    """What must match for a second bootstrap of a connected proxy (not CP-computed fields)."""
    if r.type in ("ZoneIngress", "ZoneEgress"):
        return r.spec.networking
    return r.spec


def _decode_proxy_resource(doc: object, proxy_type: ProxyType) -> Resource[Any]:
    """The proxy's own resource, from a Universal document (text or parsed), of the type it must have."""
    if isinstance(doc, str):
        docs = load_documents(doc)
        if len(docs) != 1:
            what = "dataplane" if proxy_type.in_mesh else f"zone {proxy_type.value}"
            raise InvalidInput(f"the {what} must be exactly one document")
        doc = docs[0]
    r = decode(doc)
    want = proxy_type.resource_type
    if r.type != want:
        raise InvalidInput(FieldError("type", f'must be {want} for a proxy of type {proxy_type.value}, got "{r.type}"'))
    if proxy_type.in_mesh and r.mesh is not None and "." in r.mesh:
        raise InvalidInput(FieldError("mesh", f'"{r.mesh}": meshes that serve proxies cannot have a "." in their name'))
    return r


def _first_service(dp: Resource[DataplaneSpec]) -> str:
    for ib in dp.spec.networking.inbound:
        return ib.service
    gw = dp.spec.networking.gateway
    return gw.tags.get("kuma.io/service", dp.name) if gw is not None else dp.name


def _version(node: base_pb2.Node) -> str:
    if not node.HasField("user_agent_build_version"):
        return str(node.user_agent_version)
    v = node.user_agent_build_version.version
    return f"{v.major_number}.{v.minor_number}.{v.patch}"
