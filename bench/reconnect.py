# ruff: noqa: ASYNC109 - timeouts here are polling deadlines, not cancel scopes
"""Reconnect storm: restart the zone CP under N connected proxies; how long until all are back?

``python -m bench.reconnect [--n 1000]`` (``make bench-reconnect``). A zone CP with a SQLite store (the
Dataplanes must survive the restart; the proxies' Dataplanes are PUT over REST, mesh as in
``bench.convergence``) serves N simulated proxies (``bench.adsclient``; each reconnects 50 ms after its
stream ends). The CP is stopped (SIGTERM), every client sees its stream end, and a new CP process is
started on the same ports. Reported: CP stop time; new process spawn -> ``/ready``; spawn -> every
client reconnected and ACKed CDS, LDS and EDS again (``all_acked_s``, the headline; also from
``/ready``); the new CP's peak RSS (``VmHWM``) and RSS after; the new CP's CPU for the storm; and stream
endings during the storm by gRPC status code — ``UNAVAILABLE`` is the CP being down, anything else
(``CANCELLED`` from a full pending-request queue, ``PERMISSION_DENIED``, ``RESOURCE_EXHAUSTED``, ...) is a
stream the new CP refused.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import (
    ControlPlane,
    ProcessGroup,
    Workers,
    cpu_seconds,
    load,
    machine,
    peak_rss_bytes,
    rss_bytes,
    table,
    write_results,
)
from bench.convergence import MESH, Config, _address, _dataplane, moving_dataplane, proxy_dataplane

TARGETS = {"all_acked_s_n1000": 2.0, "refused": 0}


async def storm(n: int, workers_k: int, rounds: int, timeout: float, workdir: Path) -> dict[str, Any]:
    group = ProcessGroup(workdir)
    cfg = Config()
    cp = ControlPlane(group, coalesce=0.02, env={"ATOLL_STORE": "sqlite", "ATOLL_DATAPLANE_GRACE": "60"})
    try:
        cp.start()
        cp.put({"type": "Mesh", "name": MESH})
        docs = [_dataplane(f"svc-{j}-static", f"svc-{j}", _address(200_000 + j), 8080, []) for j in range(cfg.services)]
        docs += [proxy_dataplane(i, cfg) for i in range(n)]
        docs.append(moving_dataplane(0))
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(cp.put, docs))
        workers = Workers(group, f"127.0.0.1:{cp.xds_port}", "delta", [f"{MESH}.p-{i}" for i in range(n)], workers_k)
        await workers.start()
        try:
            t = time.monotonic()
            await workers.wait_ready(timeout)
            first_connect_s = time.monotonic() - t
            out: list[dict[str, Any]] = []
            for _ in range(rounds):
                out.append(await _one_restart(cp, workers, n, timeout))
            return {"n": n, "first_connect_s": first_connect_s, "rounds": out, "load": load()}
        finally:
            await workers.stop()
    finally:
        group.close()


async def _one_restart(cp: ControlPlane, workers: Workers, n: int, timeout: float) -> dict[str, Any]:
    before = await workers.status()
    t = time.monotonic()
    cp.stop()
    stop_s = time.monotonic() - t
    deadline = time.monotonic() + timeout
    while (st := await workers.status())["ready"] > 0:  # every client has seen its stream end
        if time.monotonic() > deadline:
            raise TimeoutError(f"clients still ready {timeout}s after the CP stopped: {st}")
        await asyncio.sleep(0.02)
    spawn = time.monotonic()
    await asyncio.to_thread(cp.start)
    ready = time.monotonic()
    peak = 0
    while True:
        st = await workers.status()
        peak = max(peak, rss_bytes(cp.pid))
        if st["ready"] >= n:
            break
        if time.monotonic() > spawn + timeout:
            raise TimeoutError(f"{st['ready']}/{n} clients back {timeout}s after the restart: {st}")
        await asyncio.sleep(0.01)
    done = time.monotonic()
    codes = {k: v - before["codes"].get(k, 0) for k, v in st["codes"].items() if v - before["codes"].get(k, 0)}
    refused = {k: v for k, v in codes.items() if k != "UNAVAILABLE"}
    return {
        "stop_s": stop_s,
        "spawn_to_ready_s": ready - spawn,
        "all_acked_s": done - spawn,
        "all_acked_from_ready_s": done - ready,
        "peak_rss_mb": max(peak, peak_rss_bytes(cp.pid)) / 2**20,
        "rss_after_mb": rss_bytes(cp.pid) / 2**20,
        "cp_cpu_s": cpu_seconds(cp.pid),
        "stream_endings": codes,
        "refused": sum(refused.values()),
        "refused_by_code": refused,
    }


def report(data: dict[str, Any]) -> str:
    rows = []
    for r in data["results"]:
        for i, x in enumerate(r["rounds"]):
            rows.append(
                [
                    r["n"],
                    i + 1,
                    x["stop_s"],
                    x["spawn_to_ready_s"],
                    x["all_acked_s"],
                    x["all_acked_from_ready_s"],
                    x["peak_rss_mb"],
                    x["cp_cpu_s"],
                    x["refused"],
                    ",".join(f"{k}={v}" for k, v in sorted(x["stream_endings"].items())) or "-",
                ]
            )
    head = ["N", "round", "stop s", "spawn->ready s", "spawn->all ACKed s", "ready->all s", "peak MB", "cpu s"]
    head += ["refused", "stream endings"]
    m = data["machine"]
    return "\n".join(
        [
            table(head, rows),
            "",
            "targets (not asserted): all reconnected and ACKed <= 2 s at N=1000, no stream refused",
            f"machine: {m['nproc']} x {m['cpu']}; load at start {m['loadavg']}, at end {data.get('load_end', '?')}",
        ]
    )


async def run(ns: list[int], workers: int, rounds: int, timeout: float) -> dict[str, Any]:
    results = []
    host = machine()
    with tempfile.TemporaryDirectory(prefix="atoll-bench-reconnect-") as tmp:
        for n in ns:
            d = Path(tmp) / str(n)
            d.mkdir()
            results.append(await storm(n, workers, rounds, timeout, d))
    return {
        "benchmark": "reconnect",
        "config": {"ns": ns, "workers": workers, "rounds": rounds, "mode": "delta", "store": "sqlite"},
        "machine": host,
        "targets": TARGETS,
        "results": results,
        "load_end": load(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="1000")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    data = asyncio.run(run([int(x) for x in a.n.split(",")], a.workers, a.rounds, a.timeout))
    print(report(data))
    if not a.no_write:
        print(f"results: {write_results('reconnect', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
