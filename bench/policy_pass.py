"""The reconciler's passes timed in-process: CPU ms per mesh-wide policy change and per endpoint change.

No gRPC, no clients, no other process: one ``ProxyReconciler`` over a ``MemoryStore`` holding the
convergence benchmark's mesh (``--services`` static Dataplanes, N proxies ``p-<i>`` with
``--outbounds`` outbounds each), every proxy watched in the ``SnapshotCache`` (as if its stream were
open), then changes written to the store one at a time: a MeshTimeout flipping ``connectionTimeout``
(every proxy regenerates) and a Dataplane of ``svc-0`` moving port (the endpoint fast path). Each
pass is timed with the process CPU clock, so the numbers hold on a loaded machine far better than the
convergence benchmark's latencies (what the machine's load still changes is the cache behaviour).

It reads nothing but ``atoll``'s public reconciler, store and codec, so the same file runs against an
older checkout too (``/path/to/other/.venv/bin/python bench/policy_pass.py``): that is how builds are
compared side by side. ``--profile FILE`` writes a cProfile of the measured policy passes.

    python -m bench.policy_pass --n 1000 --changes 10
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from atoll.proxies.reconciler import ProxyReconciler
from atoll.resources import decode
from atoll.store import MemoryStore
from atoll.xds.server import SnapshotCache

MESH = "default"


def _dataplane(name: str, service: str, address: str, port: int, outbounds: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "type": "Dataplane",
        "mesh": MESH,
        "name": name,
        "networking": {
            "address": address,
            "inbound": [{"port": port, "tags": {"kuma.io/service": service, "kuma.io/protocol": "http"}}],
            "outbound": [{"port": p, "tags": {"kuma.io/service": s}} for s, p in outbounds],
        },
    }


def _address(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def documents(n: int, services: int, outbounds: int) -> list[dict[str, Any]]:
    """The convergence benchmark's mesh: the Mesh, one static Dataplane per service, N proxies."""
    docs: list[dict[str, Any]] = [{"type": "Mesh", "name": MESH}]
    docs += [_dataplane(f"svc-{j}-static", f"svc-{j}", _address(200_000 + j), 8080, []) for j in range(services)]
    for i in range(n):
        reached = [0] + [(i + k) % services or 1 for k in range(1, outbounds)]
        outs = [(f"svc-{j}", 10000 + j) for j in dict.fromkeys(reached)]
        docs.append(_dataplane(f"p-{i}", f"svc-{i % services}", _address(i + 1), 8080, outs))
    docs.append(moving(0))
    return docs


def moving(step: int) -> dict[str, Any]:
    return _dataplane("svc-0-moving", "svc-0", "10.255.0.1", 7000 + step % 2, [])


def timeout_policy(step: int) -> dict[str, Any]:
    default = {"connectionTimeout": f"{2 + step % 2}s", "http": {"requestTimeout": "15s"}}
    return {
        "type": "MeshTimeout",
        "mesh": MESH,
        "name": "bench-timeout",
        "spec": {"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": {"kind": "Mesh"}, "default": default}]},
    }


async def _put(store: MemoryStore, doc: dict[str, Any]) -> None:
    r = decode(doc)
    try:
        cur = await store.get(r.type, r.name, r.mesh)
    except Exception:
        await store.create(r)
    else:
        await store.update(r.with_meta(version=cur.meta.version))


async def _until(check: Callable[[], bool], seconds: float = 600.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the reconciler did not run a pass in time")
        await asyncio.sleep(0.001)


async def run(n: int, services: int, outbounds: int, changes: int, warmup: int, profile: str | None) -> dict[str, Any]:
    gc.set_threshold(50_000)  # as the CP process does
    store, cache = MemoryStore(), SnapshotCache()
    for doc in documents(n, services, outbounds):
        await store.create(decode(doc))
    for i in range(n):
        cache.watch(f"{MESH}.p-{i}", lambda _: None)
    rec = ProxyReconciler(store, cache, zone="zone-1", window=0.0)
    task = asyncio.create_task(rec.run())
    out: dict[str, Any] = {"n": n}
    try:
        await asyncio.wait_for(rec.ready.wait(), 600)
        prof = cProfile.Profile() if profile else None
        for kind, doc_of in (("endpoint", moving), ("policy", timeout_policy)):
            cpu_ms: list[float] = []
            generated = 0
            for step in range(1, warmup + changes + 1):
                passes = rec.passes
                c0 = time.process_time()
                if prof is not None and kind == "policy" and step > warmup:
                    prof.enable()
                await _put(store, doc_of(step))
                await _until(lambda p=passes: rec.passes > p)  # type: ignore[misc]
                if prof is not None:
                    prof.disable()
                if step > warmup:
                    cpu_ms.append((time.process_time() - c0) * 1000)
                    assert rec.last_pass is not None
                    generated += rec.last_pass.generated
            out[kind] = {
                "cpu_ms_p50": round(statistics.median(cpu_ms), 1),
                "cpu_ms_mean": round(statistics.fmean(cpu_ms), 1),
                "generated_per_pass": generated / changes,
            }
        if prof is not None and profile:
            prof.dump_stats(profile)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="proxies")
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--outbounds", type=int, default=10)
    ap.add_argument("--changes", type=int, default=10, help="measured changes of each kind")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--profile", help="write a cProfile of the measured policy passes to this file")
    a = ap.parse_args()
    result = asyncio.run(run(a.n, a.services, a.outbounds, a.changes, a.warmup, a.profile))
    with open("/proc/loadavg") as f:
        result["load"] = f.read().split()[:3]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
