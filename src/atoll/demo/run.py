"""The demo's wiring: processes, resources, apps and the live traffic report (see ``atoll.demo``)."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from atoll.demo.apps import Load, backend, frontend
from atoll.demo.processes import Child, free_port, http_ok, port_free, post, put, python_module

MESH = {
    "type": "Mesh",
    "name": "default",
    "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]},
}
# With mTLS on, nothing is allowed until a MeshTrafficPermission says so.
ALLOW_ALL = {
    "type": "MeshTrafficPermission",
    "mesh": "default",
    "name": "allow-all",
    "spec": {"targetRef": {"kind": "Mesh"}, "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}]},
}


def _port(preferred: int) -> int:
    return preferred if port_free(preferred) else free_port()


def _dataplane(name: str, service: str, inbound_port: int, app_port: int, outbound: dict[str, int]) -> dict[str, Any]:
    return {
        "type": "Dataplane",
        "mesh": "default",
        "name": name,
        "networking": {
            "address": "127.0.0.1",
            "inbound": [
                {
                    "port": inbound_port,
                    "servicePort": app_port,
                    "tags": {"kuma.io/service": service, "kuma.io/protocol": "http"},
                    "serviceProbe": {"interval": "1s", "timeout": "1s", "tcp": {}},
                }
            ],
            "outbound": [{"port": p, "tags": {"kuma.io/service": s}} for s, p in outbound.items()],
        },
    }


def run_demo(duration: float | None = None, out: TextIO = sys.stdout, keep: bool = False) -> int:
    """Run until Ctrl-C (or ``duration`` seconds); 0 on a clean stop, 1 if something failed to start."""
    work = Path(tempfile.mkdtemp(prefix="atoll-demo-"))

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    with ExitStack() as stack:
        if not keep:
            stack.callback(shutil.rmtree, work, True)
        try:
            api, diag, xds = _port(5681), _port(5680), _port(5678)
            say(f"Atoll demo: files in {work}")
            cp = Child(
                "control plane",
                python_module("atoll.cp"),
                work / "cp.log",
                env={
                    "ATOLL_STORE": "sqlite",
                    "ATOLL_DATA_DIR": str(work / "cp"),
                    "ATOLL_API_PORT": str(api),
                    "ATOLL_DIAGNOSTICS_PORT": str(diag),
                    "ATOLL_XDS_PORT": str(xds),
                    "ATOLL_DATAPLANE_GRACE": "3",
                },
            )
            stack.callback(cp.stop)
            cp.wait_for(lambda: http_ok(f"http://127.0.0.1:{diag}/ready"), 30, "the control plane to be ready")
            api_url = f"http://127.0.0.1:{api}"
            say(f"  control plane   REST {api_url}   ADS 127.0.0.1:{xds}   diagnostics http://127.0.0.1:{diag}")
            put(api_url, "/meshes/default", MESH)
            put(api_url, "/meshes/default/meshtrafficpermissions/allow-all", ALLOW_ALL)
            say("  mesh default    mTLS (builtin CA), MeshTrafficPermission allow-all")

            backend_out = free_port()
            apps: dict[str, Any] = {}
            agents: dict[str, Child] = {}
            plan = [("backend-1", "backend"), ("backend-2", "backend"), ("frontend", "frontend")]
            for name, service in plan:
                app_port = free_port()
                if service == "backend":
                    apps[name] = backend(app_port, name)
                    outbound: dict[str, int] = {}
                else:
                    apps[name] = frontend(app_port, backend_out)
                    outbound = {"backend": backend_out}
                stack.callback(apps[name].stop)
                doc = _dataplane(name, service, free_port(), app_port, outbound)
                f = work / f"{name}.json"
                f.write_text(json.dumps(doc, indent=2))
                token = work / f"{name}.token"
                token.write_text(post(api_url, "/tokens/dataplane", {"mesh": "default", "name": name})["token"])
                agent = Child(
                    f"sidecar {name}",
                    python_module(
                        "atoll.cli.dp", "run", "--cp", api_url, "--dataplane-file", str(f), "--token-file", str(token)
                    ),
                    work / f"{name}.log",
                )
                stack.callback(agent.stop)
                agents[name] = agent
            for name, agent in agents.items():
                agent.wait_log("atoll-dp ready", timeout=60)
                say(f"  sidecar {name:<10} ready (pid {agent.proc.pid})")
        except (RuntimeError, OSError) as e:
            say(f"demo failed to start: {e}")
            return 1

        atoll = f"{Path(sys.executable).parent / 'atoll'} --cp {api_url}"
        say("")
        say("Try, in another terminal:")
        say(f"  {atoll} get dataplanes")
        say(f"  {atoll} inspect dataplanes")
        say(f"  {atoll} inspect dataplane frontend --config-dump | less")
        say(f"  kill {agents['backend-2'].proc.pid}      # stop backend-2's sidecar: traffic moves to backend-1")
        say("")
        load = Load(apps["frontend"].port)
        stack.callback(load.stop)
        started = time.monotonic()
        try:
            while duration is None or time.monotonic() - started < duration:
                time.sleep(2.0)
                answers, errors = load.take()
                say(_report(answers, errors))
        except KeyboardInterrupt:
            say("\nstopping...")
        say("demo stopped")
    return 0


def _report(answers: Counter[str], errors: Counter[str]) -> str:
    total = sum(answers.values()) + sum(errors.values())
    if total == 0:
        return "traffic: no requests"
    shares = "  ".join(f"{name} {100 * n / total:3.0f}%" for name, n in sorted(answers.items()))
    failed = sum(errors.values())
    detail = f" ({', '.join(f'{k} x{v}' for k, v in errors.items())})" if errors else ""
    return f"traffic: {total / 2:5.1f} req/s  {shares}  failed {failed}{detail}"
