"""The GUI every control plane serves at ``/gui`` on its API port (docs/gui.md).

A plain HTML page with two scripts and one style sheet from this package (``static/``), no build step
and no CDN. The browser fetches everything it shows: from the REST API itself (policies, YAML, a
policy's proxies, config dumps) and from the GUI's views (``atoll.gui.views``: zones, services with
their EDS traffic shares, proxies paged and filtered on the server, rollout), which compute nothing
of their own but call what the REST routes and the reconciler call. Pages follow server-sent events
(``atoll.gui.live``) and refresh what they show within about a second of a change.

``mount_gui(app, deps, pulse)`` adds the routes (``atoll.gui.routes``) and the ``/`` redirect for
browsers to an app made by ``atoll.api.create_app`` from the same ``ApiDependencies``, and returns
the ``LiveEvents`` component that the control plane runs next to its API server.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from fastapi import FastAPI

from atoll.api.deps import ApiDependencies, ZoneInsights
from atoll.api.wire import Access
from atoll.gui.live import LiveEvents, Pulse
from atoll.gui.routes import GUI, BrowserRedirect, GuiRoutes, add_gui_routes
from atoll.gui.views import Sources
from atoll.store.protocol import ListFilter, Store, list_all

__all__ = ["GUI", "LiveEvents", "Sources", "mount_gui", "zones_pulse"]


def zones_pulse(store: Store, zone_insights: ZoneInsights) -> Pulse:
    """A global CP's live state: each zone's connection (online, since, version, refused syncs)."""

    async def pulse() -> Hashable:
        out = []
        for z in await list_all(store, ListFilter(type="Zone")):
            i = await zone_insights(z.name)
            out.append((z.name, i.get("online"), i.get("connectedSince"), i.get("cpVersion"), i.get("nacks")))
        return tuple(out)

    return pulse


def revision_pulse(revision: Callable[[], int]) -> Pulse:
    """A zone CP's live state: the proxy inventory's revision (bumped on every stream change)."""

    async def pulse() -> Hashable:
        return revision()

    return pulse


def mount_gui(app: FastAPI, deps: ApiDependencies, revision: Callable[[], int] | None = None) -> LiveEvents:
    """Serve the GUI on ``app`` (built from ``deps``); ``revision``: the proxy inventory's, if this CP
    serves proxies. Returns the event component to run beside the API server."""
    if deps.zone_insights is not None:
        pulse: Pulse | None = zones_pulse(deps.store, deps.zone_insights)
    elif revision is not None:
        pulse = revision_pulse(revision)
    else:
        pulse = None
    events = LiveEvents(deps.store, pulse)
    sources = Sources(
        store=deps.store,
        info=deps.info,
        proxies=deps.proxies,
        dataplane_insights=deps.dataplane_insights,
        zone_insights=deps.zone_insights,
    )
    add_gui_routes(app.router, GuiRoutes(sources, Access(deps.is_admin), events))
    app.add_middleware(BrowserRedirect)
    return events
