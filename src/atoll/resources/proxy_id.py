"""Who a proxy is: its type and its node id, parsed and formatted here and nowhere else.

A proxy names itself to its control plane by the xDS node id. There are three types of proxy
(``ProxyType``), and each has one node-id form:

- ``dataplane``: ``<mesh>.<name>`` — a sidecar (or proxyless gRPC client) of a mesh; mesh names that
  serve proxies cannot hold a ``.``, so the first dot splits the id;
- ``ingress``: ``ingress:<name>`` — a zone ingress, in no mesh;
- ``egress``: ``egress:<name>`` — a zone egress, in no mesh.

``NodeId`` is the value (frozen, hashable); ``str(node)`` gives the wire form and ``NodeId.parse``
reads it back, refusing a malformed id with a ``MalformedNodeId`` that says which form was expected.
``parse(str(n)) == n`` holds for every ``NodeId`` the constructors accept. The wire form is what proxies,
snapshot caches, inventories and tokens key on, so it must never change.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

_INGRESS_PREFIX = "ingress:"
_EGRESS_PREFIX = "egress:"


class ProxyType(enum.Enum):
    """The three kinds of proxy a zone CP serves; the value is the name used in bootstrap requests,
    tokens and ``atoll dp run --proxy-type``."""

    DATAPLANE = "dataplane"
    INGRESS = "ingress"
    EGRESS = "egress"

    @property
    def resource_type(self) -> str:
        """The resource that describes a proxy of this type."""
        return _RESOURCE_TYPES[self]

    @property
    def in_mesh(self) -> bool:
        """Whether a proxy of this type belongs to a mesh (zone ingresses and egresses do not)."""
        return self is ProxyType.DATAPLANE

    @classmethod
    def of_resource(cls, resource_type: str) -> ProxyType:
        """The proxy type a resource type describes; ``ValueError`` if it describes no proxy."""
        for t, name in _RESOURCE_TYPES.items():
            if name == resource_type:
                return t
        raise ValueError(f"{resource_type} does not describe a proxy")


_RESOURCE_TYPES = {ProxyType.DATAPLANE: "Dataplane", ProxyType.INGRESS: "ZoneIngress", ProxyType.EGRESS: "ZoneEgress"}

PROXY_TYPE_NAMES: tuple[str, ...] = tuple(t.value for t in ProxyType)
"""``("dataplane", "ingress", "egress")``: the names a request or a token may give."""


class MalformedNodeId(ValueError):
    """A string that is not a node id of any proxy type."""


def dataplane_node_id(mesh: str, name: str) -> str:
    """The wire form of a dataplane's node id, without building a ``NodeId`` (for hot loops)."""
    return f"{mesh}.{name}"


@dataclass(frozen=True, slots=True)
class NodeId:
    """A proxy's identity: its type, its mesh (dataplanes only) and its name."""

    type: ProxyType
    name: str
    mesh: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise MalformedNodeId("a node id needs a name")
        if self.type.in_mesh and not self.mesh:
            raise MalformedNodeId(f'dataplane "{self.name}" needs a mesh in its node id')
        if not self.type.in_mesh and self.mesh is not None:
            raise MalformedNodeId(f'a zone {self.type.value} belongs to no mesh, got mesh "{self.mesh}"')

    @classmethod
    def dataplane(cls, mesh: str, name: str) -> NodeId:
        return cls(ProxyType.DATAPLANE, name, mesh)

    @classmethod
    def ingress(cls, name: str) -> NodeId:
        return cls(ProxyType.INGRESS, name)

    @classmethod
    def egress(cls, name: str) -> NodeId:
        return cls(ProxyType.EGRESS, name)

    @classmethod
    def of(cls, resource_type: str, mesh: str | None, name: str) -> NodeId:
        """The node id of the proxy a Dataplane, ZoneIngress or ZoneEgress describes."""
        t = ProxyType.of_resource(resource_type)
        return cls(t, name, mesh if t.in_mesh else None)

    @classmethod
    def parse(cls, text: str) -> NodeId:
        """Read a node id in wire form; ``MalformedNodeId`` saying what was expected otherwise."""
        if text.startswith(_INGRESS_PREFIX):
            return cls._zone_proxy(ProxyType.INGRESS, text, _INGRESS_PREFIX)
        if text.startswith(_EGRESS_PREFIX):
            return cls._zone_proxy(ProxyType.EGRESS, text, _EGRESS_PREFIX)
        mesh, sep, name = text.partition(".")
        if not sep or not mesh or not name:
            raise MalformedNodeId(f'node id "{text}" is not of the form <mesh>.<name>, ingress:<name> or egress:<name>')
        return cls(ProxyType.DATAPLANE, name, mesh)

    @classmethod
    def _zone_proxy(cls, t: ProxyType, text: str, prefix: str) -> NodeId:
        name = text[len(prefix) :]
        if not name:
            raise MalformedNodeId(f'node id "{text}" has no name after "{prefix}"')
        return cls(t, name)

    @property
    def is_zone_proxy(self) -> bool:
        """A zone ingress or egress (not a dataplane of a mesh)."""
        return not self.type.in_mesh

    def __str__(self) -> str:
        if self.type is ProxyType.INGRESS:
            return _INGRESS_PREFIX + self.name
        if self.type is ProxyType.EGRESS:
            return _EGRESS_PREFIX + self.name
        assert self.mesh is not None
        return dataplane_node_id(self.mesh, self.name)
