"""The agent's half of the admin relay: answer the CP's requests for this proxy's Envoy admin API.

The CP's half, which queues the requests and waits for the answers, is in ``atoll.proxies``.

Envoy's admin API stays on loopback. The agent long-polls ``GET {cp}/dp/requests`` (the CP answers a
request or 204 after ``wait`` seconds), fetches the requested read-only admin path locally, and posts
``{id, status, body}`` to ``{cp}/dp/responses``. Errors back off (0.5 s doubling to 10 s) and never
stop the agent: inspection is best effort, traffic does not depend on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx

from atoll.api import paths

log = logging.getLogger("atoll.dp")

POLL_WAIT = 20.0


async def answer_admin_requests(cp_url: str, *, mesh: str, name: str, admin_url: str, token: str | None = None) -> None:
    """Serve the CP's admin requests for ``mesh/name`` until cancelled."""
    headers = {"x-atoll-token": token} if token else {}
    delay = 0.5
    async with httpx.AsyncClient(timeout=POLL_WAIT + 10, headers=headers) as cp, httpx.AsyncClient(timeout=5) as admin:
        while True:
            try:
                r = await cp.get(cp_url + paths.DP_REQUESTS, params={"mesh": mesh, "name": name, "wait": POLL_WAIT})
                if r.status_code == 204:
                    delay = 0.5
                    continue
                r.raise_for_status()
                req = r.json()
                status, body = await _fetch(admin, admin_url + str(req["path"]))
                await cp.post(cp_url + paths.DP_RESPONSES, json={"id": req["id"], "status": status, "body": body})
                delay = 0.5
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
                log.debug("admin relay: %r; retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


async def _fetch(admin: httpx.AsyncClient, url: str) -> tuple[int, Any]:
    try:
        resp = await admin.get(url)
    except httpx.HTTPError as e:
        return 502, f"envoy admin API unreachable: {e}"
    try:
        return resp.status_code, json.loads(resp.text)
    except ValueError:
        return resp.status_code, resp.text
