"""Prometheus metrics of a control plane: HTTP requests, store operations, resources by type.

``Metrics`` owns one ``CollectorRegistry`` (never the process-global default, so several control
planes can live in one test process). ``RequestMetrics`` (an ASGI middleware of the API app) counts
each request by method, route template (``unmatched`` if none) and status, and observes its
latency; ``InstrumentedStore`` wraps any ``Store`` and counts each operation by name and outcome;
``refresh_resource_counts`` sets the ``atoll_resources`` gauge from the store just before a scrape
(the diagnostics server calls it), so the gauge needs no watcher of its own.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atoll.errors import AlreadyExists, Conflict, NotFound
from atoll.resources.meta import Resource
from atoll.resources.types import all_types
from atoll.store.protocol import Events, ListFilter, Op, Page, Store, Subscription

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

T = TypeVar("T")


class Metrics:
    """The metric families of one control plane, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.http_requests = Counter(
            "atoll_api_requests",
            "REST API requests served, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "atoll_api_request_duration_seconds",
            "Time to serve a REST API request, by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.store_operations = Counter(
            "atoll_store_operations",
            "Store operations, by operation and outcome (ok, not_found, conflict, already_exists, error).",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.resources = Gauge(
            "atoll_resources",
            "Resources in the store, by type (counted when metrics are scraped).",
            ["type"],
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_latency.labels(method, route).observe(seconds)

    async def refresh_resource_counts(self, store: Store) -> None:
        for rt in all_types():
            page = await store.list(ListFilter(type=rt.name), limit=0)
            self.resources.labels(rt.name).set(page.total)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        data: bytes = generate_latest(self.registry)
        return data


class RequestMetrics:
    """ASGI middleware: counts every request by method, route template (``unmatched`` if none) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], template, status, time.perf_counter() - start)


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, Conflict):
        return "conflict"
    if isinstance(exc, AlreadyExists):
        return "already_exists"
    return "error"


class InstrumentedStore:
    """A ``Store`` that counts every operation of the store it wraps (same behaviour otherwise)."""

    def __init__(self, inner: Store, metrics: Metrics) -> None:
        self.inner = inner
        self._count = metrics.store_operations

    def _done(self, op: str, exc: BaseException | None) -> None:
        self._count.labels(op, _outcome(exc)).inc()

    async def _counted(self, op: str, call: Awaitable[T]) -> T:
        """The result of ``call`` (an operation of the inner store), counted by its outcome."""
        try:
            out = await call
        except Exception as e:
            self._done(op, e)
            raise
        self._done(op, None)
        return out

    async def create(self, resource: Resource[Any]) -> Resource[Any]:
        return await self._counted("create", self.inner.create(resource))

    async def update(self, resource: Resource[Any]) -> Resource[Any]:
        return await self._counted("update", self.inner.update(resource))

    async def delete(self, type: str, name: str, mesh: str | None = None, *, version: int | None = None) -> None:
        await self._counted("delete", self.inner.delete(type, name, mesh, version=version))

    async def get(self, type: str, name: str, mesh: str | None = None) -> Resource[Any]:
        return await self._counted("get", self.inner.get(type, name, mesh))

    async def list(self, filter: ListFilter, *, offset: int = 0, limit: int | None = None) -> Page:
        return await self._counted("list", self.inner.list(filter, offset=offset, limit=limit))

    async def apply(self, ops: Sequence[Op]) -> Events:
        return await self._counted("apply", self.inner.apply(ops))

    def watch(self) -> Subscription:
        self._done("watch", None)
        return self.inner.watch()

    async def close(self) -> None:
        await self.inner.close()
