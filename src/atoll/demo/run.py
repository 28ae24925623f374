"""The demo's wiring: a multi-zone mesh of real processes, live traffic, and commands to break it.

Global CP; zone-1 and zone-2, each a zone CP (its own SQLite store) dialing global's KDS over TLS with a
zone token, and a zone ingress; mesh ``default`` with mTLS (builtin CA, created at global and synced) and
an allow-all MeshTrafficPermission. ``frontend`` (zone-1) calls ``backend`` through its sidecar; backend
runs once in zone-1 and twice in zone-2, so about 1/3 of the traffic stays local and 2/3 crosses to
zone-2 through its ingress. The mesh routes through a zone egress (``routing.zoneEgress``): zone-1 has
one, so zone-1's cross-zone traffic leaves through it, and so do calls to the ExternalService
``outside`` (a plain HTTP server outside the mesh, which the frontend calls on ``/external``): the
egress terminates the mesh mTLS, checks permissions and calls it. Every sidecar has a dataplane token
issued by global. See ``atoll.demo``.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from atoll.api import paths
from atoll.demo.apps import App, Load, backend, frontend
from atoll.demo.processes import Child, free_port, http_ok, port_free, post, put, python_module, stop_all
from atoll.resources import get_type

MESH = {
    "type": "Mesh",
    "name": "default",
    "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]},
    "routing": {"zoneEgress": True},
}
EXTERNAL = "outside"
# With mTLS on, nothing is allowed until a MeshTrafficPermission says so.
ALLOW_ALL = {
    "type": "MeshTrafficPermission",
    "mesh": "default",
    "name": "allow-all",
    "spec": {"targetRef": {"kind": "Mesh"}, "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}]},
}
BACKENDS = {"backend-1": "zone-1", "backend-2a": "zone-2", "backend-2b": "zone-2"}
# A zone ingress passes mTLS through by SNI without decrypting it, so it picks a backend per TCP
# connection, not per request; a sidecar keeps its connection to the ingress open and reuses it. So
# that zone-2's two instances share the traffic, each sidecar connection to backend lasts at most 1 s
# (Envoy drains it after its current request, then opens a new one, which the ingress balances).
RECONNECT = {
    "type": "MeshTimeout",
    "mesh": "default",
    "name": "backend-reconnect",
    "spec": {
        "targetRef": {"kind": "Mesh"},
        "to": [
            {
                "targetRef": {"kind": "MeshService", "name": "backend"},
                "default": {"http": {"maxConnectionDuration": "1s"}},
            }
        ],
    },
}
STOP_TIMEOUT = 8.0  # seconds every process gets to stop (all at once) on Ctrl-C, then it is killed


def _port(preferred: int) -> int:
    return preferred if port_free(preferred) else free_port()


def _dataplane(name: str, service: str, app_port: int, outbound: dict[str, int]) -> dict[str, Any]:
    return {
        "type": "Dataplane",
        "mesh": "default",
        "name": name,
        "networking": {
            "address": "127.0.0.1",
            "inbound": [
                {
                    "port": free_port(),
                    "servicePort": app_port,
                    "tags": {"kuma.io/service": service, "kuma.io/protocol": "http"},
                    "serviceProbe": {"interval": "1s", "timeout": "1s", "tcp": {}},
                }
            ],
            "outbound": [{"port": p, "tags": {"kuma.io/service": s}} for s, p in outbound.items()],
        },
    }


class Demo:
    """The demo's processes and apps; ``run_demo`` calls the ``start_*`` steps in order (they say what they start)."""

    def __init__(self, work: Path, stack: ExitStack, say: Callable[[str], None]) -> None:
        self.work = work
        self.stack = stack
        self.say = say
        self.children: dict[str, Child] = {}
        self.apps: dict[str, App] = {}
        self.cps: dict[str, str] = {}  # name -> REST URL
        self.kds_port = 0  # global's, once started
        stack.callback(self.stop_children)

    def child(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        c = Child(name, argv, self.work / f"{name}.log", env)
        self.children[name] = c
        return c

    def stop_children(self) -> None:
        """Stop every process at once (proxies drain for 1 s), each killed if still there after ``STOP_TIMEOUT``."""
        stop_all(list(self.children.values()), STOP_TIMEOUT)

    def control_plane(self, name: str, env: dict[str, str], api: int, diag: int) -> str:
        cp = self.child(
            name,
            python_module("atoll.cp"),
            {
                "ATOLL_STORE": "sqlite",
                "ATOLL_DATA_DIR": str(self.work / name),
                "ATOLL_API_PORT": str(api),
                "ATOLL_DIAGNOSTICS_PORT": str(diag),
                "ATOLL_DATAPLANE_GRACE": "3",
                **env,
            },
        )
        cp.wait_for(lambda: http_ok(f"http://127.0.0.1:{diag}/ready"), 60, f"{name} to be ready")
        self.cps[name] = f"http://127.0.0.1:{api}"
        return self.cps[name]

    def proxy(self, zone: str, name: str, doc: dict[str, Any], token: str, proxy_type: str = "dataplane") -> Child:
        f = self.work / f"{name}.json"
        f.write_text(json.dumps(doc, indent=2))
        t = self.work / f"{name}.token"
        t.write_text(token)
        argv = python_module(
            "atoll.cli.dp", "run", "--cp", self.cps[zone], "--dataplane-file", str(f), "--token-file", str(t),
            "--proxy-type", proxy_type, "--drain-time", "1s",
        )  # fmt: skip
        # The zone verifies tokens with global's signing keys, synced over KDS: retry until they are there.
        deadline = time.monotonic() + 60
        while True:
            c = self.child(name, argv)
            try:
                c.wait_log("atoll-dp ready", timeout=30)
                return c
            except RuntimeError:
                c.stop()
                if time.monotonic() > deadline:
                    raise

    # --- the steps of ``run_demo``, in order ------------------------------------------------------

    @property
    def global_url(self) -> str:
        return self.cps["global"]

    def zone_token(self, zone: str, scope: list[str]) -> str:
        token: str = post(self.global_url, paths.TOKENS_ZONE, {"zone": zone, "scope": scope})["token"]
        return token

    def start_global(self) -> None:
        """The global CP, mesh ``default`` with mTLS and the allow-all permission."""
        self.kds_port = _port(5685)
        glob = self.control_plane(
            "global", {"ATOLL_MODE": "global", "ATOLL_KDS_PORT": str(self.kds_port)}, _port(5681), _port(5680)
        )
        self.say(f"  global CP    REST {glob}   KDS grpcs://127.0.0.1:{self.kds_port}")
        put(glob, paths.item_path(get_type("Mesh"), "default"), MESH)
        put(glob, paths.item_path(get_type("MeshTrafficPermission"), "allow-all", "default"), ALLOW_ALL)
        put(glob, paths.item_path(get_type("MeshTimeout"), "backend-reconnect", "default"), RECONNECT)
        self.say("  mesh default mTLS (builtin CA from global), MeshTrafficPermission allow-all")
        self.say("  MeshTimeout backend-reconnect: connections to backend last 1 s, so the ingress rebalances")

    def start_zone(self, zone: str) -> None:
        """A zone CP dialing global with a zone token, its ingress, and (zone-1) its egress."""
        token = self.work / f"{zone}.zone-token"
        token.write_text(self.zone_token(zone, ["cp", "ingress"]))
        env = {
            "ATOLL_MODE": "zone",
            "ATOLL_ZONE": zone,
            "ATOLL_GLOBAL_ADDRESS": f"grpcs://127.0.0.1:{self.kds_port}",
            "ATOLL_ZONE_TOKEN_FILE": str(token),
            "ATOLL_GLOBAL_CA_FILE": str(self.work / "global" / "kds-tls.crt"),
            "ATOLL_XDS_PORT": str(free_port()),
        }
        url = self.control_plane(zone, env, free_port(), free_port())
        self.say(f"  {zone} CP    REST {url}")
        port = free_port()
        networking = {"address": "127.0.0.1", "port": port, "advertisedAddress": "127.0.0.1", "advertisedPort": port}
        zi = {"type": "ZoneIngress", "name": f"ingress-{zone}", "networking": networking}
        self.proxy(zone, f"ingress-{zone}", zi, self.zone_token(zone, ["ingress"]), proxy_type="ingress")
        self.say(f"  {zone} ingress 127.0.0.1:{port}")
        if zone == "zone-1":
            eg_port = free_port()
            egress_networking = {"address": "127.0.0.1", "port": eg_port}
            ze = {"type": "ZoneEgress", "name": "egress-zone-1", "networking": egress_networking}
            self.proxy(zone, "egress-zone-1", ze, self.zone_token(zone, ["egress"]), proxy_type="egress")
            self.say(f"  {zone} egress  127.0.0.1:{eg_port}")

    def start_external_service(self) -> None:
        """A plain HTTP server outside the mesh, and the ExternalService that names it."""
        ext_port = free_port()
        self.apps[EXTERNAL] = backend(ext_port, EXTERNAL)
        self.stack.callback(self.apps[EXTERNAL].stop)
        es = {
            "type": "ExternalService",
            "mesh": "default",
            "name": EXTERNAL,
            "networking": {"address": f"127.0.0.1:{ext_port}"},
            "tags": {"kuma.io/service": EXTERNAL, "kuma.io/protocol": "http"},
        }
        put(self.global_url, paths.item_path(get_type("ExternalService"), EXTERNAL, "default"), es)
        self.say(
            f"  external service {EXTERNAL} http://127.0.0.1:{ext_port} (outside the mesh, reached via the egress)"
        )

    def start_apps(self) -> None:
        """The backends and the frontend, each behind a sidecar with a dataplane token from global."""
        out_port, out_ext = free_port(), free_port()
        for name, zone in [*BACKENDS.items(), ("frontend", "zone-1")]:
            app_port = free_port()
            if name == "frontend":
                self.apps[name] = frontend(app_port, out_port, out_ext)
                doc = _dataplane(name, "frontend", app_port, {"backend": out_port, EXTERNAL: out_ext})
            else:
                self.apps[name] = backend(app_port, name)
                doc = _dataplane(name, "backend", app_port, {})
            self.stack.callback(self.apps[name].stop)
            token = post(self.global_url, paths.TOKENS_DATAPLANE, {"mesh": "default", "name": name})["token"]
            self.proxy(zone, name, doc, token)
            self.say(f"  {zone} sidecar {name}")

    def print_guide(self) -> None:
        """The commands to look around and the keys that break the mesh."""
        atoll, glob, zone1 = f"{Path(sys.executable).parent / 'atoll'}", self.global_url, self.cps["zone-1"]
        for line in (
            "",
            "Look around (in another terminal):",
            f"  {atoll} --cp {glob} inspect zones",
            f"  {atoll} --cp {glob} inspect dataplanes",
            f"  {atoll} --cp {zone1} inspect dataplane frontend --config-dump | less",
            f"  {atoll} --cp {zone1} inspect zoneegresses",
            f"  {atoll} --cp {zone1} inspect zoneegress egress-zone-1",
            "Break it (type a number and Enter here):",
            "  1  stop zone-2's backends       2  start them again",
            "  3  take zone-2 down entirely    4  bring zone-2 back",
            "",
        ):
            self.say(line)


def run_demo(duration: float | None = None, out: TextIO = sys.stdout, keep: bool = False) -> int:
    """Run until Ctrl-C (or ``duration`` seconds); 0 on a clean stop, 1 if something failed to start.
    Ctrl-C (at any point) says that the demo is stopping and stops every process at once, within
    ``STOP_TIMEOUT`` seconds; a second Ctrl-C meanwhile is ignored, so nothing is left running."""
    work = Path(tempfile.mkdtemp(prefix="atoll-demo-"))

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    with ExitStack() as stack:
        if not keep:
            stack.callback(shutil.rmtree, work, True)
        demo = Demo(work, stack, say)
        try:
            code = _run(demo, duration, say)
        except KeyboardInterrupt:
            code = 0
        _ignore_sigint()
        say(f"\nstopping the demo (every process gets {STOP_TIMEOUT:g} s)...")
    say("demo stopped")
    return code


def _run(demo: Demo, duration: float | None, say: Callable[[str], None]) -> int:
    """Start everything, then drive and report traffic until ``duration`` (or Ctrl-C)."""
    try:
        say(f"Atoll demo: files in {demo.work}")
        demo.start_global()
        for zone in ("zone-1", "zone-2"):
            demo.start_zone(zone)
        demo.start_external_service()
        demo.start_apps()
    except (RuntimeError, OSError) as e:
        say(f"demo failed to start: {e}")
        return 1
    demo.print_guide()
    load = Load(demo.apps["frontend"].port, paths=("/", "/", "/external"))
    demo.stack.callback(load.stop)
    _commands(demo, say)
    _report_traffic(load, duration, say)
    return 0


def _ignore_sigint() -> None:
    """Ignore further Ctrl-C while stopping (only possible on the main thread; elsewhere nothing to do)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _report_traffic(load: Load, duration: float | None, say: Callable[[str], None]) -> None:
    """Say what the traffic did every 2 seconds, until ``duration`` has passed (Ctrl-C: the caller)."""
    started = time.monotonic()
    while duration is None or time.monotonic() - started < duration:
        time.sleep(2.0)
        answers, errors = load.take()
        say(_report(answers, errors))


def _commands(demo: Demo, say: Callable[[str], None]) -> None:
    """Read 1-4 from stdin (when it is a terminal) to stop and start parts of zone-2."""
    if not sys.stdin.isatty():
        return
    zone2 = ["ingress-zone-2", "backend-2a", "backend-2b", "zone-2"]

    def act(line: str) -> None:
        names = {"1": ["backend-2a", "backend-2b"], "2": ["backend-2a", "backend-2b"], "3": zone2, "4": zone2}.get(line)
        if names is None:
            return
        if line in ("1", "3"):
            for n in names:
                demo.children[n].stop()
            say(f">>> stopped {', '.join(names)}")
        else:
            for n in reversed(names):
                if not demo.children[n].alive():
                    demo.children[n].start()
            say(f">>> started {', '.join(reversed(names))}")

    def read() -> None:
        for line in sys.stdin:
            try:
                act(line.strip())
            except Exception as e:  # a demo command must never take the demo down
                say(f">>> {e}")

    threading.Thread(target=read, daemon=True).start()


def _report(answers: Counter[str], errors: Counter[str]) -> str:
    everything = sum(answers.values()) + sum(errors.values())
    if everything == 0:
        return "traffic: no requests"
    external = answers.get(EXTERNAL, 0)
    external_errors = sum(n for k, n in errors.items() if k.endswith("/external"))
    total = everything - external - external_errors  # calls to backend
    by_zone: Counter[str] = Counter()
    for name, n in answers.items():
        if name != EXTERNAL:
            by_zone[BACKENDS.get(name, name)] += n
    zones = "  ".join(f"{z} {100 * n / max(total, 1):3.0f}%" for z, n in sorted(by_zone.items()))
    shares = " ".join(
        f"{name} {100 * n / max(total, 1):.0f}%" for name, n in sorted(answers.items()) if name != EXTERNAL
    )
    ext_calls = external + external_errors
    ext = f"{EXTERNAL} {100 * external / ext_calls:.0f}% ok" if ext_calls else f"{EXTERNAL} -"
    failed = sum(errors.values())
    detail = f" ({', '.join(f'{k} x{v}' for k, v in errors.items())})" if errors else ""
    return f"traffic: {everything / 2:5.1f} req/s  {zones}   [{shares}]  external {ext}  failed {failed}{detail}"
