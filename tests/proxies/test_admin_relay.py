"""The admin relay takes an answer only from the proxy its request was sent to (issue 14, item 4).

A remote client without a token, or with another proxy's token, must not answer an admin's
config-dump request with its own content; request ids must not be guessable.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from atoll.errors import NotFound, Unauthenticated
from atoll.proxies.admin_requests import AdminRequestQueue
from atoll.proxies.endpoints import ProxyApi
from atoll.resources.proxy_id import NodeId


class _Tokens:
    """Stands in for the lifecycle's token check: ``tok-<mesh>-<name>`` is that proxy's token."""

    async def verify_dataplane(self, token: str | None, mesh: str, name: str) -> None:
        if token != f"tok-{mesh}-{name}":
            raise Unauthenticated("no valid dataplane token")


def _api(queue: AdminRequestQueue) -> ProxyApi:
    return ProxyApi(cast(Any, _Tokens()), cast(Any, None), cast(Any, None), cast(Any, None), queue)


async def _asked(api: ProxyApi, queue: AdminRequestQueue, name: str) -> tuple[asyncio.Task[Any], str]:
    """Ask proxy ``default/name`` for its config dump; return the waiting ask and the request's id."""
    ask = asyncio.create_task(queue.ask(str(NodeId.dataplane("default", name)), "/config_dump", deadline=5))
    req = await api.poll_admin_request("default", name, 1.0, f"tok-default-{name}")
    assert req is not None
    return ask, req["id"]


async def test_an_answer_needs_the_token_of_the_proxy_asked() -> None:
    queue = AdminRequestQueue()
    api = _api(queue)
    ask, rid = await _asked(api, queue, "a")
    forged = {"id": rid, "mesh": "default", "name": "a", "status": 200, "body": "forged"}
    with pytest.raises(Unauthenticated):
        await api.admin_response(forged)  # no token
    with pytest.raises(Unauthenticated):
        await api.admin_response(forged, "tok-default-b")  # another proxy's token for a's name
    with pytest.raises(NotFound):  # b's own token, answering a's request
        await api.admin_response({**forged, "name": "b"}, "tok-default-b")
    assert not ask.done()
    await api.admin_response({**forged, "body": "real"}, "tok-default-a")
    assert (await ask) == {"status": 200, "body": "real"}


async def test_request_ids_are_unguessable() -> None:
    queue = AdminRequestQueue()
    api = _api(queue)
    ids = []
    for _ in range(3):
        ask, rid = await _asked(api, queue, "a")
        ids.append(rid)
        await api.admin_response({"id": rid, "mesh": "default", "name": "a", "status": 200}, "tok-default-a")
        await ask
    assert len(set(ids)) == 3
    assert all(len(i) >= 22 and not i.lstrip("r").isdigit() for i in ids)
