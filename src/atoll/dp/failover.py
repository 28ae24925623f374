"""An agent given several control-plane instances (HA): which one bootstraps it, and ADS failover.

``atoll dp run --cp`` takes one URL, several (repeat the option, or a comma-separated list), or a host
name; ``cp_urls`` splits and checks them. The bootstrap is fetched from the first URL that answers
(``fetch_from_any``: the URLs are tried in turn, each for a short while, with a bounded, jittered
backoff between rounds, until ``cp_timeout``; the log says which instance answered and which were
skipped). A 4xx from any instance is final: every instance shares the store, so it would refuse too.

Envoy then keeps one ADS stream. With several instances its ``ads_cluster`` lists every instance's ADS
address (``add_ads_endpoints``: the address each instance answered in its own bootstrap, or, for one
that did not answer now, its URL's host with the same ADS port), with a one-second TCP health check
and a short, bounded reconnect backoff on the ADS stream (``retry_policy``): when the instance
serving the stream dies, Envoy reconnects to a healthy one within a few seconds, and as every
instance serves ADS from the same store, the proxy keeps its config. A single ``--cp`` leaves the
bootstrap exactly as the CP wrote it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from atoll.dp.cp_client import BootstrapRequest, BootstrapResponse, CpUnavailable, fetch_bootstrap

log = logging.getLogger("atoll.dp")

PER_TRY = 3.0
"""Seconds one instance may take to answer the bootstrap request before the next is tried."""
RETRY_BASE = 0.25
RETRY_MAX = 2.0
"""Envoy's ADS reconnect backoff with several instances (Envoy's default grows to 30 s)."""


def cp_urls(values: Iterable[str]) -> list[str]:
    """``--cp`` values (repeated and/or comma-separated) as a list of URLs; ``ValueError`` naming a bad one."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            url = part.strip().rstrip("/")
            if not url:
                raise ValueError(f'an empty URL in "{value}"')
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f'"{url}" is not an http(s)://host:port URL')
            if url not in out:
                out.append(url)
    if not out:
        raise ValueError("at least one control plane URL is needed")
    return out


async def fetch_from_any(
    urls: list[str], request: BootstrapRequest, *, give_up_after: float
) -> tuple[str, BootstrapResponse]:
    """The first instance's bootstrap answer, with the URL that gave it (module docstring)."""
    if len(urls) == 1:
        return urls[0], await fetch_bootstrap(urls[0], request, give_up_after=give_up_after)
    deadline = time.monotonic() + give_up_after
    delay = RETRY_BASE
    last = ""
    while True:
        for url in urls:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CpUnavailable(f"no control plane of {', '.join(urls)} answered within {give_up_after:g}s: {last}")
            try:
                response = await fetch_bootstrap(url, request, give_up_after=min(PER_TRY, left))
            except CpUnavailable as e:
                last = str(e)
                log.warning("control plane %s did not answer; trying the next one", url)
                continue
            log.info("bootstrap from control plane %s", url)
            return url, response
        await asyncio.sleep(min(delay * random.uniform(0.5, 1.0), max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, RETRY_MAX)


async def ads_endpoints(
    urls: list[str], answered: str, response: BootstrapResponse, request: BootstrapRequest
) -> list[tuple[str, int]]:
    """The ADS address of every instance: the answering one's, then each other's (asked briefly)."""
    port = response.xds_port
    first = (response.xds_host or _host(answered), port) if port is not None else None
    out = [first] if first is not None else []

    async def other(url: str) -> tuple[str, int] | None:
        try:
            r = await fetch_bootstrap(url, request, give_up_after=1.0)
        except Exception:
            return (_host(url), port) if port is not None else None
        return (r.xds_host or _host(url), r.xds_port) if r.xds_port is not None else None

    for found in await asyncio.gather(*(other(u) for u in urls if u != answered)):
        if found is not None and found not in out:
            out.append(found)
    return out


def add_ads_endpoints(bootstrap: MutableMapping[str, Any], endpoints: list[tuple[str, int]]) -> None:
    """List every instance in the bootstrap's ADS cluster, health-checked, with a short reconnect backoff."""
    if len(endpoints) < 2:
        return
    cluster = next(c for c in bootstrap["static_resources"]["clusters"] if c.get("name") == "ads_cluster")
    cluster["load_assignment"]["endpoints"] = [
        {
            "lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
                for host, port in endpoints
            ]
        }
    ]
    if any(not _is_ip(host) for host, _ in endpoints):
        cluster["type"] = "STRICT_DNS"
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    cluster["health_checks"] = [
        {
            "timeout": "1s",
            "interval": "1s",
            "unhealthy_threshold": 1,
            "healthy_threshold": 1,
            "tcp_health_check": {},
        }
    ]
    for service in bootstrap["dynamic_resources"]["ads_config"]["grpc_services"]:
        service["envoy_grpc"]["retry_policy"] = {
            "retry_back_off": {"base_interval": f"{RETRY_BASE}s", "max_interval": f"{RETRY_MAX}s"}
        }


def _host(url: str) -> str:
    return urlsplit(url).hostname or "127.0.0.1"


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
