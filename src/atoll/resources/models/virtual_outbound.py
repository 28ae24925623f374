"""VirtualOutbound: extra hostnames (and VIPs) per matched set of tag values.

Universal form (flattened): ``selectors[{match: tags}]`` (at least one), ``conf{host, port,
parameters[{name, tagKey}]}``. ``host`` and ``port`` are Go-style templates over the parameters
(``{{.service}}.mesh``); a parameter without ``tagKey`` uses its name as the tag key; one parameter
must take ``kuma.io/service``; templates may only refer to declared parameters.
"""

from __future__ import annotations

import re

from pydantic import Field

from atoll.resources.base import Check, Spec, Tags, spec_check
from atoll.resources.models.dataplane import SERVICE_TAG
from atoll.resources.types import Scope, register_type

_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEMPLATE_REF = re.compile(r"\{\{\s*\.([A-Za-z0-9_]*)\s*\}\}")


class Selector(Spec):
    match: Tags = Field(min_length=1)


class Parameter(Spec):
    name: str
    tag_key: str | None = None

    @property
    def key(self) -> str:
        return self.tag_key if self.tag_key is not None else self.name


class Conf(Spec):
    host: str = Field(min_length=1)
    port: str = Field(min_length=1)
    parameters: list[Parameter] = Field(min_length=1)

    @spec_check
    def _check(self, check: Check) -> None:
        names: set[str] = set()
        for i, p in enumerate(self.parameters):
            if not _PARAM_NAME.match(p.name):
                check.add(
                    f"parameters[{i}].name", f'must be a template identifier (letters, digits, _), got "{p.name}"'
                )
            if p.name in names:
                check.add(f"parameters[{i}].name", f'duplicate parameter "{p.name}"')
            names.add(p.name)
        if not any(p.key == SERVICE_TAG for p in self.parameters):
            check.add("parameters", f'must contain a parameter with tagKey "{SERVICE_TAG}"')
        for field in ("host", "port"):
            template: str = getattr(self, field)
            if template.count("{{") != template.count("}}"):
                check.add(field, f'unbalanced template braces in "{template}"')
            for ref in _TEMPLATE_REF.findall(template):
                if ref not in names:
                    check.add(field, f'template refers to ".{ref}", which is not a parameter')
        if "{{" not in self.port:
            try:
                port = int(self.port)
            except ValueError:
                check.add("port", f'must be a port number or a template, got "{self.port}"')
            else:
                if not 1 <= port <= 65535:
                    check.add("port", f"port {port} out of range 1..65535")


class VirtualOutboundSpec(Spec):
    selectors: list[Selector] = Field(min_length=1)
    conf: Conf


VIRTUAL_OUTBOUND = register_type(
    "VirtualOutbound", VirtualOutboundSpec, Scope.MESH, plural="virtual-outbounds", plural_aliases=("virtualoutbounds",)
)
