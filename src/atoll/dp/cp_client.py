"""The agent's side of the control-plane HTTP contract: ``POST /bootstrap`` and ``POST /dp/health``.

Paths come from ``atoll.api.paths`` (which loads no FastAPI).

``fetch_bootstrap`` posts a ``BootstrapRequest`` and returns the Envoy bootstrap and xDS address.
A 4xx answer is final: it raises ``CpRejected`` carrying the CP's ``title``, ``details`` and
``invalid_parameters`` (never retried). Connection errors, timeouts and 5xx answers are retried with
exponential backoff (0.2 s doubling to 5 s) for ``give_up_after`` seconds; then ``CpUnavailable``
says what the last attempt saw. ``post_health`` sends one health report (callers retry).
A URL that answers in HTTP/2 frames to the agent's HTTP/1.1 (a gRPC server: the CP's ADS port, 5678,
given where the REST API's URL, 5681, belongs) is not retried: ``CpUnavailable`` says so at once.
One 4xx is retried like a 5xx: a 401 for a token signed by a key the CP does not know (``unknown-key``),
which at a zone CP that just connected to global means the key is still on its way over KDS; after
``give_up_after`` it is final like any 4xx.

    AtollError
    └── CpError                 talking to the control plane failed
        ├── CpRejected          the CP answered 4xx: the request is wrong (exit code 2)
        └── CpUnavailable       no usable answer before the deadline (exit code 1)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from atoll.api import paths
from atoll.errors import AtollError, FieldError

log = logging.getLogger("atoll.dp")


class CpError(AtollError):
    """Talking to the control plane failed."""


class CpRejected(CpError):
    """The control plane answered 4xx; ``errors`` are its ``invalid_parameters``."""

    def __init__(self, status: int, title: str, details: str, errors: Sequence[FieldError]) -> None:
        self.status = status
        self.title = title
        self.details = details
        self.errors = list(errors)
        text = f"control plane rejected the request (HTTP {status}): {title}"
        if details and details != title:
            text += f": {details}"
        super().__init__(text)

    def lines(self) -> list[str]:
        """The message as printed by the CLI: one line, then one per field."""
        return [str(self)] + [f"  {e}" for e in self.errors]


class CpUnavailable(CpError):
    """No usable answer from the control plane before the deadline."""


@dataclass(frozen=True, slots=True)
class BootstrapRequest:
    proxy_type: str
    dataplane: Mapping[str, Any]
    token: str | None
    xds_mode: str
    admin_port: int
    version: Mapping[str, str]
    ca_cert: str | None = None  # PEM that verifies the CP's ADS certificate (ADS over TLS)

    def to_json(self) -> dict[str, Any]:
        extra = {"caCert": self.ca_cert} if self.ca_cert is not None else {}
        return {
            **extra,
            "proxyType": self.proxy_type,
            "dataplane": dict(self.dataplane),
            "token": self.token,
            "xdsMode": self.xds_mode,
            "adminPort": self.admin_port,
            "version": dict(self.version),
        }


@dataclass(frozen=True, slots=True)
class BootstrapResponse:
    bootstrap: Mapping[str, Any]
    xds_host: str | None = None
    xds_port: int | None = None


@dataclass(frozen=True, slots=True)
class InboundHealth:
    port: int
    ready: bool


@dataclass(frozen=True, slots=True)
class HealthReport:
    mesh: str | None
    name: str
    token: str | None
    inbounds: tuple[InboundHealth, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "mesh": self.mesh,
            "name": self.name,
            "token": self.token,
            "inbounds": [{"port": i.port, "ready": i.ready} for i in self.inbounds],
        }


def client(timeout: float = 5.0) -> httpx.AsyncClient:
    """An HTTP client for the CP and Envoy admin: no proxy from the environment (all local or direct)."""
    return httpx.AsyncClient(timeout=timeout, trust_env=False)


async def fetch_bootstrap(
    cp_url: str,
    request: BootstrapRequest,
    *,
    give_up_after: float = 60.0,
    http: httpx.AsyncClient | None = None,
) -> BootstrapResponse:
    """``POST {cp_url}/bootstrap``; retry connection errors and 5xx for ``give_up_after`` s; 4xx is final."""
    url = cp_url.rstrip("/") + paths.BOOTSTRAP
    own = http is None
    http = http or client()
    deadline = time.monotonic() + give_up_after
    delay = 0.2
    attempt = 0
    try:
        while True:
            attempt += 1
            try:
                resp = await http.post(url, json=request.to_json())
            except httpx.HTTPError as e:
                if _speaks_grpc(e):
                    raise _grpc_port(cp_url) from None
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            else:
                if 200 <= resp.status_code < 300:
                    return _bootstrap_response(resp)
                if 400 <= resp.status_code < 500:
                    rejected = _rejected(resp)
                    if not _key_in_transit(rejected) or time.monotonic() >= deadline:
                        raise rejected
                last = f"HTTP {resp.status_code}: {_problem_text(resp)}"
            left = deadline - time.monotonic()
            if left <= 0:
                raise CpUnavailable(
                    f"could not get a bootstrap from {url} within {give_up_after:g}s ({attempt} attempts); last: {last}"
                )
            log.warning("bootstrap request to %s failed (%s); retrying in %.1fs", url, last, min(delay, left))
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 5.0)
    finally:
        if own:
            await http.aclose()


async def post_health(cp_url: str, report: HealthReport, http: httpx.AsyncClient) -> None:
    """Send one health report; raises ``CpRejected`` on 4xx and ``CpUnavailable`` on anything else."""
    url = cp_url.rstrip("/") + paths.DP_HEALTH
    try:
        resp = await http.post(url, json=report.to_json())
    except httpx.HTTPError as e:
        raise CpUnavailable(f"health report to {url} failed: {type(e).__name__}: {e}") from None
    if 400 <= resp.status_code < 500:
        raise _rejected(resp)
    if not 200 <= resp.status_code < 300:
        raise CpUnavailable(f"health report to {url} failed: HTTP {resp.status_code}: {_problem_text(resp)}")


def _key_in_transit(rejected: CpRejected) -> bool:
    """A 401 for a token signed by a key the CP does not have: at a zone CP that may be a key global
    has and KDS has not delivered yet (a zone that just connected), so it is retried until the deadline."""
    return rejected.status == 401 and "(unknown-key)" in rejected.details


def _speaks_grpc(e: httpx.HTTPError) -> bool:
    """Whether the error is an HTTP/1.1 client's view of a gRPC (HTTP/2-only) server: the answer's
    first bytes, a SETTINGS frame, are no HTTP/1.1 status line (or TLS offers only ``h2``)."""
    text = str(e)
    return (isinstance(e, httpx.RemoteProtocolError) and "illegal" in text) or "NO_APPLICATION_PROTOCOL" in text


def _grpc_port(cp_url: str) -> CpUnavailable:
    return CpUnavailable(
        f"--cp {cp_url} answers in gRPC (HTTP/2): that is the CP's ADS port (5678 by default), not its REST"
        " API. --cp takes the REST API's URL, e.g. http://127.0.0.1:5681; the agent learns the ADS address"
        " from the bootstrap"
    )


def _bootstrap_response(resp: httpx.Response) -> BootstrapResponse:
    try:
        body = resp.json()
    except ValueError:
        raise CpUnavailable(f"the bootstrap answer from {resp.url} is not JSON") from None
    bootstrap = body.get("bootstrap") if isinstance(body, dict) else None
    if not isinstance(bootstrap, dict):
        raise CpUnavailable(f'the bootstrap answer from {resp.url} has no "bootstrap" object')
    xds = body.get("xds") if isinstance(body.get("xds"), dict) else {}
    host = xds.get("host")
    port = xds.get("port")
    return BootstrapResponse(
        bootstrap=bootstrap,
        xds_host=host if isinstance(host, str) else None,
        xds_port=port if isinstance(port, int) else None,
    )


def _rejected(resp: httpx.Response) -> CpRejected:
    title = f"HTTP {resp.status_code} {resp.reason_phrase}".strip()
    details = ""
    errors: list[FieldError] = []
    try:
        body = resp.json()
    except ValueError:
        details = resp.text.strip()[:500]
    else:
        if isinstance(body, dict):
            title = str(body.get("title") or title)
            details = str(body.get("details") or "")
            for p in body.get("invalid_parameters") or []:
                if isinstance(p, dict):
                    errors.append(FieldError(str(p.get("field", "")), str(p.get("reason", ""))))
    return CpRejected(resp.status_code, title, details, errors)


def _problem_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:200] or resp.reason_phrase
    if isinstance(body, dict) and body.get("title"):
        return str(body["title"]) + (f": {body['details']}" if body.get("details") else "")
    return str(body)[:200]
