"""KDS scale: N Dataplanes in one zone -> global. Initial full sync, one-resource deltas, memory, CPU.

``python -m bench.kds_scale [--dataplanes 10000] [--changes 20]`` (``make bench-kds-scale``).

Processes: a global CP and a zone CP (``python -m atoll.cp``, each its own SQLite store, ``ATOLL_AUTH``
token), the zone dialing global's KDS over TLS (``grpcs://``, global's self-signed KDS certificate as
the CA) with a zone token issued by global (``POST /tokens/zone``, scope ``cp``) — the deployment of
``tests/e2e/multizone.py``, rebuilt here on ``bench.common`` (bench never imports tests).

1. **Populate.** Global starts first and gets Mesh ``default`` over REST. The N Dataplanes (``dp-<i>``,
   service ``svc-<i % 100>``, one inbound with 5 tags, 5 outbounds to other services) are written
   straight into the zone's SQLite file through the store API (``SqliteStore.apply``, 1,000 per
   transaction) before the zone CP process exists: the zone already holds them when it starts.
2. **Initial sync.** The zone CP is spawned with global's address. Times, from the spawn: the zone's
   ``/ready`` (polled from a thread; served by the loop that does the sync, so it can answer late);
   the zone's ZoneToGlobalSync stream opening (global's log record "opened
   ZoneToGlobalSync", JSON logs with millisecond timestamps); and global holding all N (polling
   ``GET /meshes/default/dataplanes?size=1`` -> ``total``, a SQL ``count(*)``, every 20 ms). The
   headline is *stream open -> all N at global*; *spawn -> all N* includes the zone's start-up.
   CPU seconds (``/proc/<pid>/stat``) of each CP over the sync: zone from spawn (start-up included,
   and its share up to ``/ready`` shown apart), global from just before the spawn (the 20 ms count
   polling included).
3. **Deltas.** Each change PUTs one Dataplane on the zone's REST API with its ``version`` tag and
   inbound port changed, then polls global's copy (``GET /meshes/default/dataplanes/<hashed name>``,
   every 2 ms) until it shows the new tag and port. Time: PUT returned (write accepted) -> global
   shows it (also from the PUT *sent*: that adds the zone's REST write and whatever its event loop
   was busy with); p50/p99 over ``--changes`` after 2 warm-ups, with both CPs' CPU per change
   (global's is mostly answering the 2 ms polling GETs).
4. **Memory.** RSS (and peak ``VmHWM``) of both CPs after the sync; global's bytes per Dataplane are
   (RSS after the sync - RSS before the zone connected) / N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import (
    ControlPlane,
    ProcessGroup,
    cpu_seconds,
    free_port,
    http,
    load,
    machine,
    peak_rss_bytes,
    percentile,
    rss_bytes,
    table,
    wait_for,
    write_results,
    zone_join_env,
)

MESH = "default"
ZONE = "zone-1"
TARGETS = {"initial_sync_s_n10000": 10.0, "delta_p99_s": 1.0}
TARGETS_TEXT = "initial sync of 10,000 <= 10 s, one-resource delta <= 1 s (the brief's profiling thresholds)"


@dataclass
class Config:
    dataplanes: int = 10_000
    changes: int = 20
    warmup: int = 2
    services: int = 100
    outbounds: int = 5
    timeout: float = 300.0
    poll: float = 0.02
    profile: Path | None = None


# --- the zone's Dataplanes ----------------------------------------------------------------------


def dataplane(i: int, cfg: Config, *, version: str = "v1", port: int = 8080) -> dict[str, Any]:
    svc = i % cfg.services
    outs = [(svc + k) % cfg.services for k in range(1, cfg.outbounds + 1)]
    return {
        "type": "Dataplane",
        "mesh": MESH,
        "name": f"dp-{i}",
        "networking": {
            "address": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            "inbound": [
                {
                    "port": port,
                    "servicePort": 80,
                    "tags": {
                        "kuma.io/service": f"svc-{svc}",
                        "kuma.io/protocol": "http",
                        "version": version,
                        "team": f"team-{svc % 10}",
                        "app": f"svc-{svc}",
                    },
                }
            ],
            "outbound": [{"port": 10_000 + j, "tags": {"kuma.io/service": f"svc-{j}"}} for j in outs],
        },
    }


async def populate(path: Path, cfg: Config) -> None:
    """Write the N Dataplanes into the SQLite store at ``path`` (created and migrated if new)."""
    from atoll.resources.codec import decode
    from atoll.store.protocol import Put
    from atoll.store.sqlite import SqliteStore

    store = await SqliteStore.open(path)
    try:
        for start in range(0, cfg.dataplanes, 1000):
            ops = [Put(decode(dataplane(i, cfg))) for i in range(start, min(cfg.dataplanes, start + 1000))]
            await store.apply(ops)
    finally:
        await store.close()


# --- processes ----------------------------------------------------------------------------------


class Cp(ControlPlane):
    """A named CP (its own data dir and log) with a SQLite store and token auth, JSON logs at info."""

    def __init__(self, group: ProcessGroup, name: str, env: dict[str, str]) -> None:
        super().__init__(
            group,
            coalesce=0.02,
            env={
                "ATOLL_STORE": "sqlite",
                "ATOLL_AUTH": "token",
                "ATOLL_DATA_DIR": str(group.workdir / f"{name}-data"),
                "ATOLL_LOG_FORMAT": "json",
                "ATOLL_LOG_LEVEL": "info",
                **env,
            },
        )
        self.name = name
        self.data_dir = group.workdir / f"{name}-data"

    @property
    def log_path(self) -> Path:
        return self.group.workdir / f"{self.name}.log"

    def spawn(self) -> None:
        self.proc = self.group.spawn([sys.executable, "-m", "atoll.cp"], env=self.env, log=self.log_path.name)

    def start(self) -> Cp:
        self.spawn()
        wait_for(self._ready, 60, f"{self.name} /ready")
        return self

    def ready(self) -> bool:
        try:
            return self._ready()
        except RuntimeError as e:
            raise RuntimeError(f"{e}; see {self.log_path}") from None

    def get(self, path: str) -> Any:
        status, body = http("GET", self.url + path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body}")
        return body

    def log_time(self, msg_part: str) -> float | None:
        """Wall-clock time of the first JSON log record whose message contains ``msg_part``."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return None
        for line in lines:
            if msg_part not in line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if msg_part in str(rec.get("msg", "")):
                return datetime.fromisoformat(rec["time"]).timestamp()
        return None


def dataplane_total(cp: Cp) -> int:
    return int(cp.get(f"/meshes/{MESH}/dataplanes?size=1")["total"])


# --- the measurement ----------------------------------------------------------------------------


def measure(cfg: Config, workdir: Path) -> dict[str, Any]:
    from atoll.kds.names import hashed_name

    group = ProcessGroup(workdir)
    n = cfg.dataplanes
    try:
        kds_port = free_port()
        glob = Cp(group, "global", {"ATOLL_MODE": "global", "ATOLL_KDS_PORT": str(kds_port)}).start()
        glob.put({"type": "Mesh", "name": MESH})
        env = zone_join_env(glob.url, kds_port, glob.data_dir / "kds-tls.crt", ZONE, workdir / "zone.token", ["cp"])
        zone = Cp(group, "zone", {**env, "ATOLL_DATAPLANE_GRACE": "3600"})
        t = time.monotonic()
        zone.data_dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(populate(zone.data_dir / "atoll.db", cfg))
        populate_s = time.monotonic() - t

        sync = initial_sync(cfg, glob, zone)
        deltas = delta_changes(cfg, glob, zone, hashed_name)
        mem = {
            "global_rss_mb": rss_bytes(glob.pid) / 2**20,
            "global_peak_mb": peak_rss_bytes(glob.pid) / 2**20,
            "zone_rss_mb": rss_bytes(zone.pid) / 2**20,
            "zone_peak_mb": peak_rss_bytes(zone.pid) / 2**20,
        }
        return {"n": n, "populate_s": populate_s, "sync": sync, "delta": deltas, "memory_end": mem, "load": load()}
    finally:
        group.close()


def initial_sync(cfg: Config, glob: Cp, zone: Cp) -> dict[str, Any]:
    n = cfg.dataplanes
    if dataplane_total(glob) != 0:
        raise RuntimeError("global holds Dataplanes before the zone connected")
    g_rss0 = rss_bytes(glob.pid)
    g_cpu0 = cpu_seconds(glob.pid)
    wall0 = time.time()
    t0 = time.monotonic()
    zone.spawn()
    ready: dict[str, float] = {}
    stop = threading.Event()

    def watch_ready() -> None:  # apart, so a busy zone answering /ready late never delays the count polling
        while not stop.is_set():
            try:
                if zone.ready():
                    ready["s"], ready["cpu"] = time.monotonic() - t0, cpu_seconds(zone.pid)
                    return
            except (RuntimeError, OSError):
                return
            stop.wait(cfg.poll)

    watcher = threading.Thread(target=watch_ready, name="zone-ready", daemon=True)
    watcher.start()
    g_peak_during = 0
    profilers = _profile(cfg, glob, zone, "sync") if cfg.profile else []
    deadline = t0 + cfg.timeout
    last = 0
    try:
        while True:
            last = dataplane_total(glob)
            g_peak_during = max(g_peak_during, rss_bytes(glob.pid))
            if last >= n:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"global holds {last}/{n} Dataplanes {cfg.timeout}s after the zone started")
            if zone.proc is not None and zone.proc.poll() is not None:
                raise RuntimeError(f"the zone CP exited {zone.proc.returncode}; see {zone.log_path}")
            time.sleep(cfg.poll)
        synced = time.monotonic()
        g_cpu1 = cpu_seconds(glob.pid)
        z_cpu1 = cpu_seconds(zone.pid)
        for p in profilers:
            _stop_profiler(p)
        watcher.join(60)
    finally:
        stop.set()
    if "s" not in ready:
        raise RuntimeError(f"the zone CP never answered /ready; see {zone.log_path}")
    zone_ready_s, zone_cpu_ready = ready["s"], ready["cpu"]
    opened = wait_for(lambda: glob.log_time("opened ZoneToGlobalSync"), 10, "global's 'opened ZoneToGlobalSync' log")
    connected = zone.log_time("KDS: connected to global")
    open_s = opened - wall0
    spawn_to_synced = synced - t0
    return {
        "spawn_to_zone_ready_s": zone_ready_s,
        "spawn_to_stream_open_s": open_s,
        "spawn_to_zone_connected_s": (connected - wall0) if connected else None,
        "spawn_to_synced_s": spawn_to_synced,
        "stream_open_to_synced_s": spawn_to_synced - open_s,
        "global_cpu_s": g_cpu1 - g_cpu0,
        "zone_cpu_s": z_cpu1,
        "zone_cpu_to_ready_s": zone_cpu_ready,
        "global_rss_before_mb": g_rss0 / 2**20,
        "global_rss_after_mb": rss_bytes(glob.pid) / 2**20,
        "global_peak_during_mb": max(g_peak_during, peak_rss_bytes(glob.pid)) / 2**20,
        "zone_rss_after_mb": rss_bytes(zone.pid) / 2**20,
        "zone_peak_mb": peak_rss_bytes(zone.pid) / 2**20,
        "global_bytes_per_dataplane": (rss_bytes(glob.pid) - g_rss0) / n,
        "zone_bytes_per_dataplane": rss_bytes(zone.pid) / n,
        "global_total": last,
    }


def delta_changes(cfg: Config, glob: Cp, zone: Cp, hashed_name: Any) -> dict[str, Any]:
    n = cfg.dataplanes
    wait_for(lambda: http("GET", zone.url + f"/meshes/{MESH}")[0] == 200, 30, f"mesh {MESH} synced to the zone")
    times: list[float] = []
    sent_times: list[float] = []
    g_cpu: list[float] = []
    z_cpu: list[float] = []
    profilers: list[Any] = []
    for k in range(cfg.warmup + cfg.changes):
        if k == cfg.warmup and cfg.profile:
            profilers = _profile(cfg, glob, zone, "delta")
        i = (k * 7919) % n  # a different Dataplane each time, spread over the set
        version, port = f"v{k + 2}", 9000 + k % 1000
        doc = dataplane(i, cfg, version=version, port=port)
        path = f"/meshes/{MESH}/dataplanes/{hashed_name(doc['name'], ZONE, MESH)}"
        gc0, zc0 = cpu_seconds(glob.pid), cpu_seconds(zone.pid)
        t_sent = time.monotonic()
        zone.put(doc)
        t_accepted = time.monotonic()

        def arrived(path: str = path, version: str = version, port: int = port) -> bool:
            status, body = http("GET", glob.url + path)
            if status != 200:
                return False
            inbound = body["networking"]["inbound"][0]
            return bool(inbound["tags"].get("version") == version and inbound["port"] == port)

        wait_for(arrived, cfg.timeout, f"global's copy of dp-{i} to show {version}", interval=0.002)
        t_done = time.monotonic()
        if k >= cfg.warmup:
            times.append(t_done - t_accepted)
            sent_times.append(t_done - t_sent)
            g_cpu.append(cpu_seconds(glob.pid) - gc0)
            z_cpu.append(cpu_seconds(zone.pid) - zc0)
    for p in profilers:
        _stop_profiler(p)
    return {
        "changes": len(times),
        "times_s": times,
        "p50_s": percentile(times, 50),
        "p99_s": percentile(times, 99),
        "p50_sent_s": percentile(sent_times, 50),
        "p99_sent_s": percentile(sent_times, 99),
        "global_cpu_per_change_s": sum(g_cpu) / max(1, len(g_cpu)),
        "zone_cpu_per_change_s": sum(z_cpu) / max(1, len(z_cpu)),
    }


def _profile(cfg: Config, glob: Cp, zone: Cp, phase: str) -> list[Any]:
    """py-spy on both CPs (raw collapsed stacks in ``cfg.profile/<phase>-<cp>.txt``)."""
    import subprocess

    assert cfg.profile is not None
    cfg.profile.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    out = []
    for cp in (glob, zone):
        argv = [str(spy), "record", "-f", "raw", "-r", "200", "-o", str(cfg.profile / f"{phase}-{cp.name}.txt")]
        out.append(
            glob.group.spawn([*argv, "-p", str(cp.pid)], log=f"py-spy-{phase}-{cp.name}.log", stdin=subprocess.DEVNULL)
        )
    return out


def _stop_profiler(p: Any) -> None:
    import os
    import signal

    try:
        os.kill(p.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
        p.wait(30)
    except (ProcessLookupError, OSError):
        pass


# --- report -------------------------------------------------------------------------------------


def report(data: dict[str, Any]) -> str:
    r = data["result"]
    s, d = r["sync"], r["delta"]
    m = data["machine"]
    sync_rows = [
        [
            r["n"],
            s["spawn_to_zone_ready_s"],
            s["spawn_to_stream_open_s"],
            s["stream_open_to_synced_s"],
            s["spawn_to_synced_s"],
            s["zone_cpu_s"],
            s["zone_cpu_to_ready_s"],
            s["global_cpu_s"],
            s["global_rss_after_mb"],
            s["global_peak_during_mb"],
            s["global_bytes_per_dataplane"] / 1024,
            s["zone_rss_after_mb"],
        ]
    ]
    sync_head = ["N", "zone ready s", "stream open s", "open->all s", "spawn->all s", "zone cpu s"]
    sync_head += ["(to ready)", "global cpu s", "global MB", "global peak MB", "global KB/DP", "zone MB"]
    delta_rows = [
        [
            r["n"],
            d["changes"],
            d["p50_s"] * 1000,
            d["p99_s"] * 1000,
            d["p50_sent_s"] * 1000,
            d["p99_sent_s"] * 1000,
            d["zone_cpu_per_change_s"] * 1000,
            d["global_cpu_per_change_s"] * 1000,
        ]
    ]
    delta_head = ["N", "changes", "p50 ms", "p99 ms", "p50 sent ms", "p99 sent ms", "zone cpu ms", "global cpu ms"]
    return "\n".join(
        [
            f"initial sync (zone store populated before the zone CP started: {r['populate_s']:.1f} s)",
            table(sync_head, sync_rows),
            "",
            "one-resource delta: PUT on the zone returned -> global's copy shows it ('sent': from the PUT sent)",
            table(delta_head, delta_rows),
            "",
            "times from the zone CP spawn; 'stream open' = global logs the zone's ZoneToGlobalSync; cpu over the sync"
            " (zone: from spawn, start-up included); KB/DP = global RSS growth / N",
            f"targets (not asserted): {TARGETS_TEXT}",
            f"machine: {m['nproc']} x {m['cpu']}; load at start {m['loadavg']}, at end {data.get('load_end', '?')}",
        ]
    )


def run(cfg: Config) -> dict[str, Any]:
    host = machine()
    with tempfile.TemporaryDirectory(prefix="atoll-bench-kds-scale-") as tmp:
        result = measure(cfg, Path(tmp))
    return {
        "benchmark": "kds_scale",
        "config": {
            "dataplanes": cfg.dataplanes,
            "changes": cfg.changes,
            "warmup": cfg.warmup,
            "services": cfg.services,
            "outbounds": cfg.outbounds,
            "store": "sqlite",
            "populate": "store API into the zone's SQLite file before the zone CP starts",
        },
        "machine": host,
        "targets": TARGETS,
        "result": result,
        "load_end": load(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--dataplanes", type=int, default=10_000, help="Dataplanes in the zone")
    ap.add_argument("--changes", type=int, default=20, help="measured one-resource deltas (after 2 warm-ups)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds allowed for the sync and each delta")
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy both CPs during the sync and the measured deltas; stacks in DIR",
    )
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    a = ap.parse_args(argv)
    cfg = Config(dataplanes=a.dataplanes, changes=a.changes, timeout=a.timeout, profile=a.profile)
    data = run(cfg)
    print(report(data))
    if not a.no_write:
        print(f"results: {write_results('kds_scale', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
