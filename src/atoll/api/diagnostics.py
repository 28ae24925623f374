"""The diagnostics server: ``/ready``, ``/healthy`` and ``/metrics`` on a port of their own.

``/ready`` answers 200 only while ``is_ready()`` is true (the supervisor's view: every component
started and listening, and no shutdown begun), 503 otherwise, its body ``not ready`` followed by one
line per reason ``why_not()`` gives (e.g. a zone CP that global refuses says it is not federated and
why). ``/healthy`` answers 200 while the
process serves at all (liveness). ``/metrics`` refreshes the resource gauge from the store, then
returns the Prometheus text of the control plane's own registry.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from atoll.api.metrics import CONTENT_TYPE, Metrics
from atoll.store.protocol import Store

READY = "/ready"
HEALTHY = "/healthy"
METRICS = "/metrics"


def create_diagnostics_app(
    is_ready: Callable[[], bool],
    metrics: Metrics,
    store: Store | None = None,
    why_not: Callable[[], list[str]] = list,
) -> Starlette:
    """The diagnostics app. ``store`` (if given) feeds the ``atoll_resources`` gauge on each scrape."""

    async def ready(request: Request) -> Response:
        if is_ready():
            return PlainTextResponse("ready\n")
        return PlainTextResponse("".join(f"{line}\n" for line in ["not ready", *why_not()]), status_code=503)

    async def healthy(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def scrape(request: Request) -> Response:
        if store is not None:
            try:
                await metrics.refresh_resource_counts(store)
            except Exception as e:  # a scrape must still answer when the store is failing
                return JSONResponse({"title": "store unavailable", "details": str(e)}, status_code=503)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return Starlette(
        routes=[
            Route(READY, ready, methods=["GET"]),
            Route(HEALTHY, healthy, methods=["GET"]),
            Route(METRICS, scrape, methods=["GET"]),
        ]
    )
