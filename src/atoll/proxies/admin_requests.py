"""The CP's half of the admin relay: queue requests for a proxy's Envoy admin API until its agent polls.

Used by ``atoll inspect ... --config-dump`` (the agent's half lives in ``atoll.dp``).

Envoy's admin API listens on the proxy's loopback only, and the proxy may sit in a network the CP
cannot dial. So the agent dials out instead: it long-polls ``GET /dp/requests`` for work, runs each
request against its local admin API, and posts the answer to ``POST /dp/responses``. ``AdminRequestQueue``
is the CP side: ``ask(node, path)`` queues a request for that node and waits for its answer with a
deadline; the poll hands out queued requests. Only read-only admin paths are allowed.

An answer is only taken from the proxy the request was sent to: each request id is unguessable
(``secrets.token_urlsafe``) and bound to its node, and ``answer`` refuses an id asked of another node
(the REST side has checked the poster's dataplane token for the node it names before).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

ALLOWED_PATHS = (
    "/config_dump",
    "/config_dump?include_eds",
    "/clusters?format=json",
    "/stats?format=json",
    "/server_info",
    "/listeners?format=json",
)


ID_BYTES = 18
"""Random bytes of a request id (``secrets.token_urlsafe``): 144 bits, never guessed."""


class RelayTimeout(Exception):
    """The proxy's agent did not answer in time (not polling: old agent, or disconnected)."""


@dataclass(frozen=True, slots=True)
class AdminRequest:
    id: str
    path: str


class AdminRequestQueue:
    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[AdminRequest]] = {}
        self._waiting: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}

    def _queue(self, node: str) -> asyncio.Queue[AdminRequest]:
        q = self._queues.get(node)
        if q is None:
            q = self._queues[node] = asyncio.Queue(maxsize=16)
        return q

    async def ask(self, node: str, path: str, deadline: float = 5.0) -> dict[str, Any]:
        """Run ``path`` on ``node``'s Envoy admin API; the agent's answer ``{status, body}``."""
        if path not in ALLOWED_PATHS:
            raise ValueError(f"admin path {path!r} is not allowed; allowed: {', '.join(ALLOWED_PATHS)}")
        req = AdminRequest(secrets.token_urlsafe(ID_BYTES), path)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[req.id] = (node, fut)
        try:
            self._queue(node).put_nowait(req)
            return await asyncio.wait_for(fut, deadline)
        except (TimeoutError, asyncio.QueueFull):
            raise RelayTimeout(f"proxy {node} did not answer within {deadline:.0f}s") from None
        finally:
            self._waiting.pop(req.id, None)

    async def poll(self, node: str, wait: float) -> AdminRequest | None:
        """The next request for ``node``, or None after ``wait`` seconds."""
        try:
            return await asyncio.wait_for(self._queue(node).get(), wait)
        except TimeoutError:
            return None

    def answer(self, request_id: str, node: str, status: int, body: Any) -> bool:
        """Deliver ``node``'s answer; False when nobody waits for it any more, or the request was
        sent to another node."""
        waiting = self._waiting.get(request_id)
        if waiting is None:
            return False
        asked, fut = waiting
        if asked != node or fut.done():
            return False
        fut.set_result({"status": status, "body": body})
        return True
