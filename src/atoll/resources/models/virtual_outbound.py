"""VirtualOutbound: extra hostnames (and VIPs) per matched set of tag values.

Universal form (flattened): ``selectors[{match: tags}]`` (at least one), ``conf{host, port,
parameters[{name, tagKey}]}``. ``host`` and ``port`` are templates over the parameters in the Go
template syntax Kuma uses, restricted to plain references (``{{.service}}.mesh``, ``{{ .port }}``):
a parameter without ``tagKey`` uses its name as the tag key. The selectors pick the *destinations*
(Dataplane inbounds, other zones' available services, ExternalServices) whose tags render a name,
as in Kuma (``pkg/dns/vips`` matches them against the destination's tags).

Checked at apply, every problem with its field:

- a parameter name is alphanumeric (it is a template key) and unique; one parameter takes
  ``kuma.io/service`` (so a name never spans services);
- the templates refer only to declared parameters and contain nothing but such references;
- every parameter other than the ``kuma.io/service`` one is used in ``host`` or ``port`` (else it
  would narrow the endpoints without changing the name: two tag values, one name);
- ``host`` renders to a DNS name with every parameter set to a sample value;
- a literal ``port`` is 1..65535. A templated port is checked when rendered
  (``render_port``): a value that is not a port skips that entry, which inspection reports.

``render_host(tags)`` / ``render_port(tags)`` render for one destination's tags and return ``None``
with the reason when a parameter's tag is missing or the result is not a DNS name / a port.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import Field

from atoll.resources.base import Check, Spec, Tags, spec_check
from atoll.resources.models.dataplane import SERVICE_TAG
from atoll.resources.types import Scope, register_type

_PARAM_NAME = re.compile(r"^[A-Za-z0-9]+$")
_TEMPLATE_REF = re.compile(r"\{\{\s*\.([A-Za-z0-9_]*)\s*\}\}")
_DNS_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})$")
_SAMPLE = "sample"


def is_dns_name(name: str) -> bool:
    """Whether ``name`` is a DNS name: dot-separated labels of letters, digits, ``_`` and ``-`` (not
    first), each at most 63 characters, 253 in all (the rule Kuma applies to rendered hostnames)."""
    if not name or len(name) > 253:
        return False
    return all(_DNS_LABEL.match(label) for label in name.removesuffix(".").split("."))


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
                    f"parameters[{i}].name",
                    f'must consist of letters and digits to be used as a template key, got "{p.name}"',
                )
            if p.name in names:
                check.add(f"parameters[{i}].name", f'duplicate parameter "{p.name}"')
            names.add(p.name)
        if not any(p.key == SERVICE_TAG for p in self.parameters):
            check.add("parameters", f'must contain a parameter with tagKey "{SERVICE_TAG}"')
        clean = True
        used: set[str] = set()
        for field in ("host", "port"):
            template: str = getattr(self, field)
            refs = _TEMPLATE_REF.findall(template)
            used.update(refs)
            rest = _TEMPLATE_REF.sub("", template)
            if template.count("{{") != template.count("}}"):
                check.add(field, f'unbalanced template braces in "{template}"')
                clean = False
            elif "{{" in rest or "}}" in rest:
                check.add(field, 'only parameter references such as "{{.name}}" are supported in templates')
                clean = False
            for ref in refs:
                if ref not in names:
                    check.add(field, f'template refers to ".{ref}", which is not a parameter')
                    clean = False
        for i, p in enumerate(self.parameters):
            if p.key != SERVICE_TAG and p.name not in used and _PARAM_NAME.match(p.name):
                check.add(f"parameters[{i}].name", f'parameter "{p.name}" is used in neither host nor port')
        if clean:
            host = self._render(self.host, {p.key: _SAMPLE for p in self.parameters})
            if host is not None and not is_dns_name(host):
                check.add("host", f'must render to a DNS name, got "{host}" with sample values')
        if "{{" not in self.port:
            try:
                port = int(self.port)
            except ValueError:
                check.add("port", f'must be a port number or a template, got "{self.port}"')
            else:
                if not 1 <= port <= 65535:
                    check.add("port", f"port {port} out of range 1..65535")

    def _render(self, template: str, tags: Mapping[str, str]) -> str | None:
        """``template`` with each ``{{.param}}`` replaced by its tag's value; None if a tag is missing."""
        values: dict[str, str] = {}
        for p in self.parameters:
            if p.key in tags:
                values[p.name] = tags[p.key]
        missing = False

        def value(m: re.Match[str]) -> str:
            nonlocal missing
            v = values.get(m.group(1))
            if v is None:
                missing = True
                return ""
            return v

        out = _TEMPLATE_REF.sub(value, template)
        return None if missing else out


class VirtualOutboundSpec(Spec):
    selectors: list[Selector] = Field(min_length=1)
    conf: Conf

    def parameter_tags(self, tags: Mapping[str, str]) -> dict[str, str] | None:
        """The values of the parameters' tags in ``tags`` (the tags a rendered name narrows its
        endpoints to); None when one is missing (nothing is rendered for such a destination)."""
        out: dict[str, str] = {}
        for p in self.conf.parameters:
            if p.key not in tags:
                return None
            out[p.key] = tags[p.key]
        return out

    def render_host(self, tags: Mapping[str, str]) -> tuple[str | None, str]:
        """(hostname, "") for the destination ``tags``, or (None, why not)."""
        host = self.conf._render(self.conf.host, tags)
        if host is None:
            return None, "a parameter's tag is missing"
        if not is_dns_name(host):
            return None, f'host renders to "{host}", which is not a DNS name'
        return host, ""

    def render_port(self, tags: Mapping[str, str]) -> tuple[int | None, str]:
        """(port, "") for the destination ``tags``, or (None, why not)."""
        text = self.conf._render(self.conf.port, tags)
        if text is None:
            return None, "a parameter's tag is missing"
        try:
            port = int(text)
        except ValueError:
            return None, f'port renders to "{text}", which is not a number'
        if not 1 <= port <= 65535:
            return None, f"port renders to {port}, outside 1..65535"
        return port, ""

    def selects(self, tags: Mapping[str, str]) -> int | None:
        """The rank of the most specific selector matching ``tags`` (exact values count more than
        ``*``), or None when none does; a selector matches when every key is present with its value
        (``*``: any value)."""
        best: int | None = None
        for s in self.selectors:
            rank = 0
            for k, v in s.match.items():
                got = tags.get(k)
                if got is None or (v != "*" and v != got):
                    break
                rank += 1000 if v != "*" else 1
            else:
                best = rank if best is None else max(best, rank)
        return best


VIRTUAL_OUTBOUND = register_type(
    "VirtualOutbound", VirtualOutboundSpec, Scope.MESH, plural="virtual-outbounds", plural_aliases=("virtualoutbounds",)
)
