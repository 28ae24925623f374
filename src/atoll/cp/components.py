"""Long-running parts of a control plane and the supervisor that runs them together.

A ``Component`` has a ``name``, a ``ready`` flag, ``start()`` — a coroutine that runs the component
until it is stopped (it returns after ``stop()``, or raises when the component fails) — and
``stop()``, which asks ``start()`` to return soon (graceful, idempotent, safe before ``start``).

``Supervisor.run()`` starts every component as a task and waits for the first of: a stop request
(``request_stop``, e.g. from a signal handler), a component raising, or a component returning on its
own. Then it stops every component (in reverse order of adding), gives them ``stop_timeout`` seconds
to return, cancels the ones that hang, and reports why it stopped in an ``Outcome``. It is ready
only while every component is ready and no shutdown has begun; ``not_ready_reasons`` collects the
``not_ready_reason`` of the components that have one (an optional attribute) to say why not.

``HttpServer`` is the component for an ASGI app served by uvicorn on a socket it binds itself, so a
busy port is a clear startup error, and readiness means "listening"; given a certificate and key
(PEM files) it serves HTTPS. Its connections are bounded (``atoll.cp.http_guard``): a request must
arrive within ``request_timeout`` seconds, a remote address may hold ``connections_per_peer``
connections, and past ``max_connections`` uvicorn answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Protocol

import uvicorn
from starlette.types import ASGIApp

from atoll.cp.http_guard import guarded_h11

log = logging.getLogger(__name__)


class Component(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def ready(self) -> bool:
        """True once the component serves (e.g. its socket listens)."""
        ...

    async def start(self) -> None:
        """Run until ``stop()`` is called (then return) or the component fails (then raise)."""
        ...

    async def stop(self) -> None:
        """Ask ``start()`` to return soon. Idempotent; allowed before ``start()``."""
        ...


class ComponentError(Exception):
    """A component could not start or run; the message says what and why."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """Why a supervisor stopped: ``failed`` names the component at fault (``None`` if asked to stop)."""

    reason: str
    failed: str | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.failed is None else 1


class Supervisor:
    """Runs components together; one failure stops them all (see the module docstring)."""

    def __init__(self, components: Sequence[Component] = (), *, stop_timeout: float = 10.0) -> None:
        self._components: list[Component] = list(components)
        self._stop_timeout = stop_timeout
        self._stop_reason: str | None = None
        self._stop_event: asyncio.Event | None = None
        self._running = False
        self._stopping = False

    def add(self, component: Component) -> None:
        if self._running:
            raise RuntimeError("cannot add a component to a running supervisor")
        self._components.append(component)

    @property
    def components(self) -> list[Component]:
        return list(self._components)

    @property
    def ready(self) -> bool:
        if not self._running or self._stopping or self._stop_reason is not None:
            return False
        return all(c.ready for c in self._components)

    def not_ready_reasons(self) -> list[str]:
        """``name: reason`` of each component that says why it is not ready (``not_ready_reason``)."""
        reasons = ((c.name, getattr(c, "not_ready_reason", None)) for c in self._components)
        return [f"{name}: {reason}" for name, reason in reasons if reason]

    def request_stop(self, reason: str = "stop requested") -> None:
        """Begin a graceful shutdown (never blocks; safe to call from a signal handler)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        if self._stop_event is not None:
            self._stop_event.set()

    async def run(self) -> Outcome:
        """Run every component until a stop request or a failure; returns once all have ended."""
        if self._running:
            raise RuntimeError("supervisor already running")
        self._running = True
        self._stop_event = asyncio.Event()
        if self._stop_reason is not None:
            self._stop_event.set()
        tasks: dict[asyncio.Task[None], Component] = {
            asyncio.create_task(c.start(), name=f"component:{c.name}"): c for c in self._components
        }
        stop_wait = asyncio.create_task(self._stop_event.wait(), name="supervisor:stop-request")
        outcome: Outcome | None = None
        try:
            done, _ = await asyncio.wait([*tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task in done:
                    outcome = _ended(tasks[task], task)
                    break
            if outcome is None:
                outcome = Outcome(self._stop_reason or "stop requested")
            if outcome.failed is not None:
                log.error("stopping: %s", outcome.reason)
            else:
                log.info("stopping: %s", outcome.reason)
        finally:
            self._stopping = True
            stop_wait.cancel()
            await self._stop_all(tasks)
        return outcome

    async def _stop_all(self, tasks: dict[asyncio.Task[None], Component]) -> None:
        for c in reversed(self._components):
            try:
                await asyncio.wait_for(c.stop(), self._stop_timeout)
            except Exception:
                log.exception("component %s: error while asking it to stop", c.name)
        pending = [t for t in tasks if not t.done()]
        if pending:
            _, hung = await asyncio.wait(pending, timeout=self._stop_timeout)
            for t in hung:
                log.warning("component %s did not stop within %.1fs; cancelling it", tasks[t].name, self._stop_timeout)
                t.cancel()
            if hung:
                await asyncio.wait(hung)
        for t, c in tasks.items():
            if not t.cancelled() and t.exception() is not None:
                log.debug("component %s ended with %r", c.name, t.exception())
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info("all components stopped")


def _ended(c: Component, task: asyncio.Task[None]) -> Outcome:
    if task.cancelled():
        return Outcome(f"component {c.name} was cancelled", failed=c.name)
    exc = task.exception()
    if exc is not None:
        if not isinstance(exc, ComponentError):
            log.error("component %s crashed", c.name, exc_info=exc)
        return Outcome(f"component {c.name} failed: {exc}", failed=c.name)
    return Outcome(f"component {c.name} stopped on its own", failed=c.name)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the supervisor owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; ``ComponentError`` saying why if it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ComponentError(f"cannot resolve listen address {host!r}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise ComponentError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


class HttpServer:
    """An ASGI app served by uvicorn on ``host:port``: a ``Component``."""

    def __init__(
        self,
        name: str,
        app: ASGIApp,
        host: str,
        port: int,
        *,
        graceful_timeout: float = 5.0,
        access_log: bool = False,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        request_timeout: float = 10.0,
        connections_per_peer: int = 256,
        max_connections: int = 4096,
    ) -> None:
        self._name = name
        self._request_timeout = request_timeout
        self._connections_per_peer = connections_per_peer
        self._max_connections = max_connections
        self._app = app
        self.host = host
        self.port = port
        self._graceful_timeout = graceful_timeout
        self._access_log = access_log
        self._ssl_certfile = ssl_certfile  # both set: serve HTTPS
        self._ssl_keyfile = ssl_keyfile
        self._server: _Server | None = None
        self._stop_requested = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def ready(self) -> bool:
        return self._server is not None and self._server.started and not self._server.should_exit

    async def start(self) -> None:
        if self._stop_requested:
            return
        sock = listen(self.host, self.port)
        log.info("%s server listening on %s:%d", self._name, self.host, self.port)
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            access_log=self._access_log,
            server_header=False,
            timeout_graceful_shutdown=int(max(1, self._graceful_timeout)),
            ssl_certfile=self._ssl_certfile,
            ssl_keyfile=self._ssl_keyfile,
            http=guarded_h11(self._request_timeout, self._connections_per_peer),
            limit_concurrency=self._max_connections,
            timeout_keep_alive=5,
        )
        server = _Server(config)
        server.should_exit = self._stop_requested
        self._server = server
        try:
            await server.serve(sockets=[sock])
        except SystemExit as e:  # uvicorn exits on some startup failures; keep it inside the component
            raise ComponentError(f"{self._name} server failed to start (uvicorn exit {e.code})") from None
        finally:
            sock.close()
        log.info("%s server on %s:%d stopped", self._name, self.host, self.port)

    async def stop(self) -> None:
        self._stop_requested = True
        if self._server is not None:
            self._server.should_exit = True
