"""MeshHTTPRoute and MeshTCPRoute settings -> the outbound listener's routes and tcp_proxy (pure).

HTTP (``http_routes``): one Envoy route per ``HttpRule`` (``topology.settings.routes``: already
merged, split per match and sorted most specific first), in that order, so Envoy's first match is
Kuma's most specific rule. Matches: ``Exact`` -> ``path``; ``PathPrefix`` -> ``path_separated_prefix``
(``/a`` matches ``/a`` and ``/a/b``, not ``/ab``; ``/`` -> ``prefix /``); ``RegularExpression`` ->
``safe_regex``; the method is a ``:method`` header match; header and query parameter matches map
one to one (``Absent`` is an inverted presence match). Filters: header modifiers -> the route's
``request_headers_to_add``/``_remove`` (``set`` overwrites, ``add`` appends) and the response ones;
``RequestRedirect`` -> a redirect action (302 unless ``statusCode`` says otherwise); ``URLRewrite``
-> ``prefix_rewrite`` (a rewrite to ``/`` is a regex rewrite, so that no ``//`` appears; redirects
likewise), a full-path regex rewrite, ``host_rewrite_literal`` or ``auto_host_rewrite``;
``RequestMirror`` -> ``request_mirror_policies`` (percentage as a runtime fraction). Backends: one ->
``cluster``, several -> ``weighted_clusters``; a backend of weight 0 is
left out, and a rule whose backends all weigh 0 answers 503 (nothing to send to).

TCP (``apply_routes`` on the tcp_proxy): the tcp_proxy goes to ``weighted_clusters`` (one backend: ``cluster``).
An HTTP service with a MeshTCPRoute and no MeshHTTPRoute routes every request to the TCP route's
backends, as in Kuma.

Cluster names come from ``topology.routes.split_cluster_name``: the outbound's own cluster for its
service without tags, else the split cluster the sidecar generator builds.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2

from atoll.topology import HTTP_PROTOCOLS, OutboundView
from atoll.topology.routes import split_cluster_name
from atoll.topology.settings.routes import (
    Backend,
    HeaderMatch,
    HeaderModifier,
    HttpMatch,
    HttpRouteSettings,
    HttpRule,
    Redirect,
    Rewrite,
)
from atoll.xds.generate.envoy import duration, edit_filters, u32
from atoll.xds.generate.policies import retry_policy

__all__ = ["apply_route_policies", "apply_routes", "http_routes"]

_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


def apply_routes(listener: listener_pb2.Listener, ob: OutboundView) -> None:
    """Put the routes of ``ob``'s MeshHTTPRoute (or MeshTCPRoute) on its outbound ``listener``."""
    http = ob.policies.http_route
    tcp = ob.policies.tcp_route
    if ob.protocol in HTTP_PROTOCOLS and http is None and tcp is not None:
        http = HttpRouteSettings(
            rules=(HttpRule(match=HttpMatch(path_type="PathPrefix", path="/"), backends=tcp.backends),)
        )
    if http is None and tcp is None:
        return
    settings = http

    def on_hcm(manager: hcm_pb2.HttpConnectionManager) -> None:
        if settings is None:
            return
        for vh in manager.route_config.virtual_hosts:
            del vh.routes[:]
            vh.routes.extend(http_routes(settings, ob.service))

    def on_tcp(proxy: tcp_proxy_pb2.TcpProxy) -> None:
        if tcp is None:
            return
        live = [b for b in tcp.backends if b.weight > 0]
        if len(live) == 1:
            proxy.cluster = split_cluster_name(live[0].service, live[0].tags)
        elif live:
            proxy.weighted_clusters.CopyFrom(
                tcp_proxy_pb2.TcpProxy.WeightedCluster(
                    clusters=[
                        tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(
                            name=split_cluster_name(b.service, b.tags), weight=b.weight
                        )
                        for b in live
                    ]
                )
            )

    edit_filters(listener, on_hcm, on_tcp)


def apply_route_policies(listener: listener_pb2.Listener, ob: OutboundView) -> None:
    """MeshTimeout/MeshRetry targeting a MeshHTTPRoute, on the Envoy routes of that route's rules only
    (after the outbound-wide ones, which they override): the request timeout, the stream idle timeout
    as the route's idle timeout, and the retry policy."""
    settings = ob.policies.http_route
    by_route = dict(ob.route_policies)
    if settings is None or not by_route or ob.protocol not in HTTP_PROTOCOLS:
        return

    def on_hcm(manager: hcm_pb2.HttpConnectionManager) -> None:
        for vh in manager.route_config.virtual_hosts:
            for rule, route in zip(settings.rules, vh.routes, strict=True):
                policies = by_route.get(rule.route or "")
                if policies is None or route.WhichOneof("action") != "route":
                    continue
                if policies.timeout is not None:
                    http = policies.timeout.http
                    if http.request_timeout is not None:
                        route.route.timeout.CopyFrom(duration(http.request_timeout))
                    if http.stream_idle_timeout is not None:
                        route.route.idle_timeout.CopyFrom(duration(http.stream_idle_timeout))
                if policies.retry is not None:
                    policy = retry_policy(policies.retry, ob.protocol)
                    if policy is not None:
                        route.route.retry_policy.CopyFrom(policy)

    edit_filters(listener, on_hcm, lambda tcp: None)


def http_routes(settings: HttpRouteSettings, service: str) -> list[rc.Route]:
    """The Envoy routes of ``settings`` for an outbound of ``service`` (in order)."""
    return [_route(rule, service) for rule in settings.rules]


def _route(rule: HttpRule, service: str) -> rc.Route:
    route = rc.Route(match=_match(rule.match))
    if rule.request_headers is not None:
        _modify(route.request_headers_to_add, route.request_headers_to_remove, rule.request_headers)
    if rule.response_headers is not None:
        _modify(route.response_headers_to_add, route.response_headers_to_remove, rule.response_headers)
    if rule.redirect is not None:
        route.redirect.CopyFrom(_redirect(rule.redirect, rule.match))
        return route
    backends = rule.backends if rule.backends is not None else (Backend(service=service),)
    live = [b for b in backends if b.weight > 0]
    if not live:
        route.direct_response.status = 503
        return route
    action = route.route
    if len(live) == 1:
        action.cluster = split_cluster_name(live[0].service, live[0].tags)
    else:
        action.weighted_clusters.clusters.extend(
            rc.WeightedCluster.ClusterWeight(name=split_cluster_name(b.service, b.tags), weight=u32(b.weight))
            for b in live
        )
    if rule.rewrite is not None:
        _rewrite(action, rule.rewrite, rule.match)
    for mirror in rule.mirrors:
        policy = rc.RouteAction.RequestMirrorPolicy(
            cluster=split_cluster_name(mirror.backend.service, mirror.backend.tags)
        )
        if mirror.percentage is not None:
            policy.runtime_fraction.default_value.CopyFrom(_fraction(mirror.percentage))
        action.request_mirror_policies.append(policy)
    return route


def _fraction(percentage: float) -> percent_pb2.FractionalPercent:
    # Millionths keep up to four decimals of a percentage exact.
    return percent_pb2.FractionalPercent(
        numerator=round(percentage * 10_000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def _regex(value: str) -> regex_pb2.RegexMatcher:
    return regex_pb2.RegexMatcher(regex=value)


def _match(m: HttpMatch) -> rc.RouteMatch:
    out = rc.RouteMatch()
    if m.path_type == "Exact":
        out.path = m.path
    elif m.path_type == "RegularExpression":
        out.safe_regex.CopyFrom(_regex(m.path))
    elif m.path_type == "PathPrefix" and m.path != "/":
        out.path_separated_prefix = m.path
    else:
        out.prefix = "/"
    if m.method is not None:
        out.headers.append(rc.HeaderMatcher(name=":method", string_match=string_pb2.StringMatcher(exact=m.method)))
    out.headers.extend(_header(h) for h in m.headers)
    for kind, name, value in m.query:
        matcher = (
            string_pb2.StringMatcher(safe_regex=_regex(value))
            if kind == "RegularExpression"
            else string_pb2.StringMatcher(exact=value)
        )
        out.query_parameters.append(rc.QueryParameterMatcher(name=name, string_match=matcher))
    return out


def _header(h: HeaderMatch) -> rc.HeaderMatcher:
    if h.type == "Present":
        return rc.HeaderMatcher(name=h.name, present_match=True)
    if h.type == "Absent":
        return rc.HeaderMatcher(name=h.name, present_match=True, invert_match=True)
    if h.type == "RegularExpression":
        return rc.HeaderMatcher(name=h.name, string_match=string_pb2.StringMatcher(safe_regex=_regex(h.value)))
    if h.type == "Prefix":
        return rc.HeaderMatcher(name=h.name, string_match=string_pb2.StringMatcher(prefix=h.value))
    return rc.HeaderMatcher(name=h.name, string_match=string_pb2.StringMatcher(exact=h.value))


def _modify(add: Any, remove: Any, mod: HeaderModifier) -> None:
    options = [
        *(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=k, value=v),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
            for k, v in mod.set
        ),
        *(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=k, value=v),
                append_action=base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD,
            )
            for k, v in mod.add
        ),
    ]
    add.extend(options)
    remove.extend(mod.remove)


def _redirect(r: Redirect, match: HttpMatch) -> rc.RedirectAction:
    out = rc.RedirectAction(response_code=_REDIRECT_CODES.get(r.status_code or 302, rc.RedirectAction.FOUND))
    if r.scheme is not None:
        out.scheme_redirect = r.scheme
    if r.hostname is not None:
        out.host_redirect = r.hostname
    if r.port is not None:
        out.port_redirect = r.port
    if r.path is not None:
        if r.path.type == "ReplaceFullPath":
            out.path_redirect = r.path.value
        else:
            _prefix_rewrite(out, r.path.value, match)
    return out


def _rewrite(action: rc.RouteAction, r: Rewrite, match: HttpMatch) -> None:
    if r.hostname is not None:
        action.host_rewrite_literal = r.hostname
    elif r.host_to_backend_hostname:
        action.auto_host_rewrite.value = True
    if r.path is None:
        return
    if r.path.type == "ReplaceFullPath":
        action.regex_rewrite.pattern.CopyFrom(_regex("^.*$"))
        action.regex_rewrite.substitution = r.path.value
    else:
        _prefix_rewrite(action, r.path.value, match)


def _prefix_rewrite(action: rc.RouteAction | rc.RedirectAction, value: str, match: HttpMatch) -> None:
    """Replace the matched prefix by ``value``; to ``/`` by a regex, so that ``/a/b`` under ``/a`` gives
    ``/b``, not ``//b``."""
    if value == "/" and match.path_type == "PathPrefix" and match.path != "/":
        action.regex_rewrite.pattern.CopyFrom(_regex(f"^{_escape(match.path)}/*"))
        action.regex_rewrite.substitution = "/"
    else:
        action.prefix_rewrite = value


def _escape(text: str) -> str:
    return "".join("\\" + c if c in r".^$*+?()[]{}|\\" else c for c in text)
