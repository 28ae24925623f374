"""MeshHTTPRoute and MeshTCPRoute settings: the ordered HTTP rules and the weighted TCP backends.

Routes do not merge field by field like the other kinds; folding follows Kuma's meshhttproute plugin:

- **HTTP** (``fold_http_route``): the ``to[]`` items that match an outbound, least to most specific,
  contribute their ``rules[]``. Rules are keyed by their ``matches`` list: a rule whose matches equal
  an earlier one's merges its ``default`` over it (RFC 7396: the more specific policy's ``filters``
  and ``backendRefs`` replace the other's), so overlapping or contradictory policies resolve to the
  most specific one, never to an error. Rules of more specific policies come first. Each match of a
  rule then becomes its own ``HttpRule`` (a rule's matches are ORed), sorted stably by specificity as
  the Gateway API orders them: a path before none; Exact before PathPrefix before RegularExpression;
  a longer prefix (or expression) first; a method before none; more headers, then more query
  parameters, first. A catch-all ``PathPrefix /`` rule to the outbound's own service ends the list
  unless a rule already matches every request.
- **TCP** (``fold_tcp_route``): the ``default`` of the most specific rule wins (its ``backendRefs``).

A ``Backend`` is a service, a tag subset (``MeshServiceSubset``'s ``tags``; empty for
``MeshService``) and a weight (default 1). ``backends=None`` on a rule means "the outbound's own
service". Backends of weight 0 are kept (the generator leaves them out of the split).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from atoll.topology.settings.conf import block, blocks, freeze, integer, merge_patch, number, text, texts
from atoll.topology.tags import Tags

__all__ = [
    "CATCH_ALL",
    "ROUTE_ORIGIN",
    "Backend",
    "HeaderMatch",
    "HeaderModifier",
    "HttpMatch",
    "HttpRouteSettings",
    "HttpRule",
    "Mirror",
    "PathRewrite",
    "Redirect",
    "Rewrite",
    "TcpRouteSettings",
    "fold_http_route",
    "fold_tcp_route",
]

NO_TAGS = Tags({})
ROUTE_ORIGIN = "_route"
"""Key under which ``matching`` adds a MeshHTTPRoute's name to each of its ``to[]`` items."""
PathType = Literal["Exact", "PathPrefix", "RegularExpression"]
HeaderType = Literal["Exact", "Present", "RegularExpression", "Absent", "Prefix"]


@dataclass(frozen=True, slots=True)
class Backend:
    """Where a route sends traffic: the instances of ``service`` carrying ``tags``, with ``weight``."""

    service: str
    tags: Tags = NO_TAGS
    weight: int = 1


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    name: str
    type: HeaderType = "Exact"
    value: str = ""


@dataclass(frozen=True, slots=True)
class HttpMatch:
    """One match: every part given must hold (query parameters are (type, name, value))."""

    path_type: PathType | None = None
    path: str = ""
    method: str | None = None
    headers: tuple[HeaderMatch, ...] = ()
    query: tuple[tuple[str, str, str], ...] = ()

    def sort_key(self) -> tuple[int, int, int, int, int]:
        """Smaller is more specific (see the module docstring)."""
        path_rank = {"Exact": 0, "PathPrefix": 1, "RegularExpression": 2}.get(self.path_type or "", 3)
        length = 0 if self.path_type in (None, "Exact") else -len(self.path)
        return (path_rank, length, 0 if self.method else 1, -len(self.headers), -len(self.query))


CATCH_ALL = HttpMatch(path_type="PathPrefix", path="/")


@dataclass(frozen=True, slots=True)
class HeaderModifier:
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PathRewrite:
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    value: str


@dataclass(frozen=True, slots=True)
class Redirect:
    scheme: str | None = None
    hostname: str | None = None
    port: int | None = None
    status_code: int | None = None
    path: PathRewrite | None = None


@dataclass(frozen=True, slots=True)
class Rewrite:
    hostname: str | None = None
    path: PathRewrite | None = None
    host_to_backend_hostname: bool = False


@dataclass(frozen=True, slots=True)
class Mirror:
    backend: Backend
    percentage: float | None = None


@dataclass(frozen=True, slots=True)
class HttpRule:
    """One route: its match, its filters and its backends (None: the outbound's own service)."""

    match: HttpMatch
    backends: tuple[Backend, ...] | None = None
    route: str | None = None
    """The MeshHTTPRoute the rule comes from (of two with equal matches, the more specific one)."""
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    mirrors: tuple[Mirror, ...] = ()


@dataclass(frozen=True, slots=True)
class HttpRouteSettings:
    """The outbound's HTTP rules, most specific first (ends with a catch-all)."""

    rules: tuple[HttpRule, ...]

    def backends(self) -> tuple[Backend, ...]:
        """Every backend the rules send to or mirror to (in rule order, repeats kept)."""
        out: list[Backend] = []
        for rule in self.rules:
            out.extend(rule.backends or ())
            out.extend(m.backend for m in rule.mirrors)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class TcpRouteSettings:
    backends: tuple[Backend, ...]


def _backend(ref: Mapping[str, Any]) -> Backend | None:
    name = text(ref, "name")
    if not name or ref.get("kind") not in ("MeshService", "MeshServiceSubset"):
        return None  # MeshExternalService, label selectors, ...: not resolved in this mode
    weight = integer(ref, "weight")
    return Backend(service=name, tags=Tags(dict(block(ref, "tags") or {})), weight=1 if weight is None else weight)


def _backends(conf: Mapping[str, Any]) -> tuple[Backend, ...] | None:
    if conf.get("backendRefs") is None:
        return None
    return tuple(b for b in (_backend(r) for r in blocks(conf, "backendRefs")) if b is not None)


def _match(conf: Mapping[str, Any]) -> HttpMatch:
    path = block(conf, "path") or {}
    return HttpMatch(
        path_type=cast(PathType | None, text(path, "type")),
        path=text(path, "value") or "",
        method=text(conf, "method"),
        headers=tuple(
            HeaderMatch(
                name=str(h["name"]), type=cast(HeaderType, h.get("type") or "Exact"), value=str(h.get("value", ""))
            )
            for h in blocks(conf, "headers")
        ),
        query=tuple((str(q["type"]), str(q["name"]), str(q["value"])) for q in blocks(conf, "queryParams")),
    )


def _pairs(conf: Mapping[str, Any], key: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(h["name"]), str(h["value"])) for h in blocks(conf, key))


def _modifier(conf: Mapping[str, Any] | None, before: HeaderModifier | None) -> HeaderModifier | None:
    if conf is None:
        return before
    base = before or HeaderModifier()
    return HeaderModifier(
        set=base.set + _pairs(conf, "set"),
        add=base.add + _pairs(conf, "add"),
        remove=base.remove + texts(conf, "remove"),
    )


def _path_rewrite(conf: Mapping[str, Any] | None) -> PathRewrite | None:
    if conf is None:
        return None
    kind = text(conf, "type")
    if kind == "ReplaceFullPath":
        return PathRewrite("ReplaceFullPath", text(conf, "replaceFullPath") or "/")
    return PathRewrite("ReplacePrefixMatch", text(conf, "replacePrefixMatch") or "/")


def _rule(match: HttpMatch, default: Mapping[str, Any], route: str | None) -> HttpRule:
    request = response = None
    redirect = rewrite = None
    mirrors: list[Mirror] = []
    for f in blocks(default, "filters"):
        kind = f.get("type")
        if kind == "RequestHeaderModifier":
            request = _modifier(block(f, "requestHeaderModifier"), request)
        elif kind == "ResponseHeaderModifier":
            response = _modifier(block(f, "responseHeaderModifier"), response)
        elif kind == "RequestRedirect" and (r := block(f, "requestRedirect")) is not None:
            redirect = Redirect(
                scheme=text(r, "scheme"),
                hostname=text(r, "hostname"),
                port=integer(r, "port"),
                status_code=integer(r, "statusCode"),
                path=_path_rewrite(block(r, "path")),
            )
        elif kind == "URLRewrite" and (u := block(f, "urlRewrite")) is not None:
            rewrite = Rewrite(
                hostname=text(u, "hostname"),
                path=_path_rewrite(block(u, "path")),
                host_to_backend_hostname=bool(u.get("hostToBackendHostname")),
            )
        elif kind == "RequestMirror" and (m := block(f, "requestMirror")) is not None:
            backend = _backend(block(m, "backendRef") or {})
            if backend is not None:
                mirrors.append(Mirror(backend=backend, percentage=number(m, "percentage")))
    return HttpRule(
        match=match,
        backends=_backends(default),
        route=route,
        request_headers=request,
        response_headers=response,
        redirect=redirect,
        rewrite=rewrite,
        mirrors=tuple(mirrors),
    )


def fold_http_route(items: Sequence[Mapping[str, Any]]) -> HttpRouteSettings:
    """The rules of the ``to[]`` items (least to most specific) that match one outbound."""
    keyed: dict[Any, Mapping[str, Any]] = {}
    origin: dict[Any, str | None] = {}
    for item in reversed(items):  # most specific policy first
        for rule in blocks(item, "rules"):
            key = freeze(rule.get("matches") or ())
            if key not in keyed:
                keyed[key] = rule.get("default") or {}
                origin[key] = text(item, ROUTE_ORIGIN)
            else:  # a less specific policy's rule with the same matches: the more specific one wins
                keyed[key] = merge_patch(rule.get("default") or {}, keyed[key])
    flat = [(_match(m), key) for key in keyed for m in key]
    flat.sort(key=lambda mk: mk[0].sort_key())
    rules = [_rule(match, keyed[key], origin[key]) for match, key in flat]
    if not any(r.match == CATCH_ALL for r in rules):
        rules.append(HttpRule(match=CATCH_ALL))
    return HttpRouteSettings(rules=tuple(rules))


def fold_tcp_route(items: Sequence[Mapping[str, Any]]) -> TcpRouteSettings | None:
    """The backends of the most specific ``to[]`` item's rule (None when it names none)."""
    for item in reversed(items):
        for rule in blocks(item, "rules"):
            backends = _backends(rule.get("default") or {})
            if backends is not None:
                return TcpRouteSettings(backends=backends)
    return None
