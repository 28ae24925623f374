"""The data plane agent (``atoll dp``): bootstrap fetch, supervised Envoy, readiness, service probes.

Public surface:

- ``load_proxy_resource(text, variables, proxy_type)`` / ``render_template`` / ``parse_vars``: the
  proxy's own resource from a (templated) Universal file, validated locally (``document``).
- ``AgentConfig`` + ``run_agent(config, stop=..., handle_signals=...)``: the whole agent (``agent``).
- ``EnvoyOptions`` + ``EnvoySupervisor``: Envoy as a supervised child (``envoy``).
- ``ProbeSpec``, ``ProbeState``, ``HealthReporter``, ``run_probes``: service probes (``probe``).
- ``fetch_bootstrap``, ``CpRejected``, ``CpUnavailable``: the CP HTTP contract (``cp_client``).
- ``grpc_bootstrap``: the bootstrap for proxyless gRPC clients (``grpc_bootstrap``).
"""

from atoll.dp.agent import READY_LINE, AgentConfig, run_agent
from atoll.dp.cp_client import (
    BootstrapRequest,
    BootstrapResponse,
    CpError,
    CpRejected,
    CpUnavailable,
    HealthReport,
    fetch_bootstrap,
)
from atoll.dp.document import (
    PROXY_TYPES,
    ProxyType,
    load_proxy_resource,
    parse_vars,
    proxy_type_of,
    render_template,
)
from atoll.dp.envoy import EnvoyOptions, EnvoySupervisor, envoy_binary
from atoll.dp.grpc_bootstrap import grpc_bootstrap
from atoll.dp.probe import HealthReporter, InboundTarget, ProbeSpec, ProbeState, inbound_targets, run_probes

__all__ = [
    "PROXY_TYPES",
    "READY_LINE",
    "AgentConfig",
    "BootstrapRequest",
    "BootstrapResponse",
    "CpError",
    "CpRejected",
    "CpUnavailable",
    "EnvoyOptions",
    "EnvoySupervisor",
    "HealthReport",
    "HealthReporter",
    "InboundTarget",
    "ProbeSpec",
    "ProbeState",
    "ProxyType",
    "envoy_binary",
    "fetch_bootstrap",
    "grpc_bootstrap",
    "inbound_targets",
    "load_proxy_resource",
    "parse_vars",
    "proxy_type_of",
    "render_template",
    "run_agent",
    "run_probes",
]
