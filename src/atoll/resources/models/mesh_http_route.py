"""MeshHTTPRoute: HTTP routing for outbound traffic — matches, filters and weighted backends.

``to[]{targetRef, hostnames, rules[]{matches[] (at least one), default{filters, backendRefs}}}``.
A filter's ``type`` names the one block it must carry (``RequestHeaderModifier`` ->
``requestHeaderModifier``, ...). Paths start with ``/``; ``ReplacePrefixMatch`` rewrites need a
``PathPrefix`` match.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from atoll.resources.base import Check, Percentage, Port, Spec, spec_check
from atoll.resources.models.common import BackendRef, HeaderModifier
from atoll.resources.models.policy import TargetItem, ToPolicySpec, register_policy
from atoll.resources.models.targetref import TO_KINDS, TOP_KINDS_GW, RefRules

Method = Literal["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"]


class PathMatch(Spec):
    type: Literal["Exact", "PathPrefix", "RegularExpression"]
    value: str

    @spec_check
    def _check(self, check: Check) -> None:
        if self.type != "RegularExpression" and not self.value.startswith("/"):
            check.add("value", f'must start with "/", got "{self.value}"')
        if self.type == "PathPrefix" and self.value != "/" and self.value.endswith("/"):
            check.add("value", "a PathPrefix must not end with /")


class QueryParamMatch(Spec):
    type: Literal["Exact", "RegularExpression"]
    name: str = Field(min_length=1)
    value: str


class HeaderMatch(Spec):
    type: Literal["Exact", "Present", "RegularExpression", "Absent", "Prefix"] | None = None
    name: str = Field(min_length=1)
    value: str | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if self.type in ("Present", "Absent") and self.value is not None:
            check.add("value", f"must not be set with type {self.type}")
        if self.type not in ("Present", "Absent") and self.value is None:
            check.add("value", "required")


class Match(Spec):
    path: PathMatch | None = None
    method: Method | None = None
    query_params: list[QueryParamMatch] | None = None
    headers: list[HeaderMatch] | None = None


class PathRewrite(Spec):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: str | None = None
    replace_prefix_match: str | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        want, other = (
            ("replaceFullPath", "replacePrefixMatch")
            if self.type == "ReplaceFullPath"
            else ("replacePrefixMatch", "replaceFullPath")
        )
        if getattr(self, _snake(want)) is None:
            check.add(want, f"required with type {self.type}")
        if getattr(self, _snake(other)) is not None:
            check.add(other, f"must not be set with type {self.type}")


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


class RequestRedirect(Spec):
    scheme: Literal["http", "https"] | None = None
    hostname: str | None = None
    path: PathRewrite | None = None
    port: Port | None = None
    status_code: Literal[301, 302, 303, 307, 308] | None = None


class UrlRewrite(Spec):
    hostname: str | None = None
    path: PathRewrite | None = None
    host_to_backend_hostname: bool | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if self.hostname is not None and self.host_to_backend_hostname:
            check.add("hostToBackendHostname", "must not be combined with hostname")


class RequestMirror(Spec):
    backend_ref: BackendRef
    percentage: Percentage | None = None


FilterType = Literal[
    "RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite", "RequestMirror"
]
_FILTER_BLOCK = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "RequestRedirect": "requestRedirect",
    "URLRewrite": "urlRewrite",
    "RequestMirror": "requestMirror",
}


class Filter(Spec):
    type: FilterType
    request_header_modifier: HeaderModifier | None = None
    response_header_modifier: HeaderModifier | None = None
    request_redirect: RequestRedirect | None = None
    url_rewrite: UrlRewrite | None = Field(default=None, alias="urlRewrite")
    request_mirror: RequestMirror | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        want = _FILTER_BLOCK[self.type]
        for block in _FILTER_BLOCK.values():
            value = getattr(self, "url_rewrite" if block == "urlRewrite" else _snake(block))
            if block == want and value is None:
                check.add(block, f"required with type {self.type}")
            if block != want and value is not None:
                check.add(block, f"must not be set with type {self.type}")


class RuleConf(Spec):
    filters: list[Filter] | None = None
    backend_refs: list[BackendRef] | None = None


class Rule(Spec):
    matches: list[Match] = Field(min_length=1)
    default: RuleConf

    @spec_check
    def _check(self, check: Check) -> None:
        redirects = [f for f in self.default.filters or [] if f.type == "RequestRedirect"]
        if redirects and self.default.backend_refs:
            check.add("default.backendRefs", "must not be set together with a RequestRedirect filter")
        for i, f in enumerate(self.default.filters or []):
            rewrite = (f.url_rewrite.path if f.url_rewrite else None) or (
                f.request_redirect.path if f.request_redirect else None
            )
            if rewrite is not None and rewrite.type == "ReplacePrefixMatch":
                if not all(m.path is not None and m.path.type == "PathPrefix" for m in self.matches):
                    check.add(f"default.filters[{i}]", "ReplacePrefixMatch needs every match to be a PathPrefix")


class To(TargetItem):
    hostnames: list[str] | None = None
    rules: list[Rule] = Field(min_length=1)


class MeshHTTPRouteSpec(ToPolicySpec[To]):
    refs = RefRules(top=TOP_KINDS_GW, to=TO_KINDS, gateway_tags=True)

    @spec_check
    def _check_more(self, check: Check) -> None:
        gateway = self.target_ref is not None and self.target_ref.kind == "MeshGateway"
        for i, item in enumerate(self.to or []):
            if item.hostnames and not gateway:
                check.add(f"to[{i}].hostnames", "can only be used with a MeshGateway targetRef")


MESH_HTTP_ROUTE = register_policy("MeshHTTPRoute", "meshhttproutes", MeshHTTPRouteSpec)
