"""Mesh: an isolated service mesh; its mTLS backends, routing, networking and observability settings.

Universal form (spec flattened). ``mtls.enabledBackend`` must name one of ``mtls.backends``; zone
egress routing needs mTLS (as Kuma requires). A CA backend's ``conf``, a logging backend's ``conf``
and a tracing backend's ``conf`` are typed by the backend's ``type`` and kept as written; the
``builtin_conf``/``typed_conf`` accessors return the typed view. Only the ``builtin`` CA is supported
for now (``provided`` is refused as an unsupported type). ``skipCreatingInitialPolicies`` lists
policy kinds (or ``*``) whose defaults are not created with the mesh (see ``resources.defaults``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import Field

from atoll.resources.base import Check, Duration, HostPort, Port, Spec, Tags, spec_check
from atoll.resources.types import Scope, register_type


class Rotation(Spec):
    expiration: Duration | None = None


class DpCert(Spec):
    rotation: Rotation | None = None


class CaCert(Spec):
    rsa_bits: int | None = Field(default=None, alias="RSAbits", ge=2048, le=8192)
    expiration: Duration | None = None


class BuiltinConf(Spec):
    ca_cert: CaCert | None = None


class NamedBackend(Spec):
    """A backend of a mesh section; names are unique within the section."""

    name: str = Field(min_length=1)


B = TypeVar("B", bound=NamedBackend)


class MtlsBackend(NamedBackend):
    type: str
    mode: Literal["STRICT", "PERMISSIVE"] | None = None
    dp_cert: DpCert | None = None
    conf: dict[str, Any] | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if self.type == "provided":
            check.add("type", 'unsupported type "provided": only the builtin CA backend is supported for now')
        elif self.type != "builtin":
            check.add("type", f'unknown CA backend type "{self.type}"; supported: builtin')
        elif self.conf is not None:
            check.model(BuiltinConf, self.conf, "conf")

    @property
    def builtin_conf(self) -> BuiltinConf:
        return BuiltinConf.model_validate(self.conf or {})


class Mtls(Spec):
    enabled_backend: str | None = None
    backends: list[MtlsBackend] = Field(default_factory=list)
    skip_validation: bool | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        _check_backends(check, self.backends, "enabledBackend", self.enabled_backend or None)

    def enabled(self) -> MtlsBackend | None:
        for b in self.backends:
            if b.name == self.enabled_backend:
                return b
        return None


def _check_backends(check: Check, backends: Sequence[NamedBackend] | None, field: str, chosen: str | None) -> None:
    """Backend names are unique and ``chosen`` (the section's ``field``), when set, is one of them."""
    names = [b.name for b in backends or ()]
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            check.add(f"backends[{i}].name", f'duplicate backend name "{n}"')
        seen.add(n)
    if chosen is not None and chosen not in names:
        check.add(field, f'"{chosen}" is not one of the backends')


class TypedConfBackend(NamedBackend):
    """A backend (logging, tracing) whose ``conf`` is required and is valid as the model its
    ``type`` names in ``confs``; ``typed_conf`` reads it as that model."""

    confs: ClassVar[dict[str, type[Spec]]]
    if TYPE_CHECKING:  # fields of each subclass, declared there so documents keep their field order
        type: str
        conf: dict[str, Any] | None

    @spec_check
    def _check(self, check: Check) -> None:
        if self.conf is None:
            check.add("conf", f"required for a {self.type} backend")
        else:
            check.model(self.confs[self.type], self.conf, "conf")

    @property
    def typed_conf(self) -> Spec:
        return self.confs[self.type].model_validate(self.conf or {})


class DefaultBackendSection(Spec, Generic[B]):
    """A section (logging, tracing) with named ``backends`` and the ``defaultBackend`` among them."""

    default_backend: str | None = None
    backends: list[B] | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        _check_backends(check, self.backends, "defaultBackend", self.default_backend)


class Routing(Spec):
    locality_aware_load_balancing: bool | None = None
    zone_egress: bool | None = None
    default_forbid_mesh_external_service_access: bool | None = None


class Outbound(Spec):
    passthrough: bool | None = None


class MeshNetworking(Spec):
    outbound: Outbound | None = None


# --- constraints ---------------------------------------------------------------------------------


class TagSelector(Spec):
    tags: Tags = Field(min_length=1)


class DataplaneProxyConstraints(Spec):
    requirements: list[TagSelector] | None = None
    restrictions: list[TagSelector] | None = None


class Constraints(Spec):
    dataplane_proxy: DataplaneProxyConstraints | None = None


# --- logging -------------------------------------------------------------------------------------


class TcpLoggingConf(Spec):
    address: HostPort


class FileLoggingConf(Spec):
    path: str = Field(min_length=1)


_LOGGING_CONF: dict[str, type[Spec]] = {"tcp": TcpLoggingConf, "file": FileLoggingConf}


class LoggingBackend(TypedConfBackend):
    confs = _LOGGING_CONF

    type: Literal["tcp", "file"]
    format: str | None = None
    conf: dict[str, Any] | None = None


class Logging(DefaultBackendSection[LoggingBackend]):
    pass


# --- metrics -------------------------------------------------------------------------------------


class MetricsTls(Spec):
    mode: Literal["activeMTLSBackend", "providedTLS", "disabled"]


class Aggregate(Spec):
    name: str = Field(min_length=1)
    port: Port | None = None
    path: str | None = None
    address: str | None = None
    enabled: bool | None = None


class EnvoyMetrics(Spec):
    filter_regex: str | None = None
    used_only: bool | None = None


class PrometheusConf(Spec):
    port: Port | None = None
    path: str | None = None
    tags: Tags | None = None
    tls: MetricsTls | None = None
    aggregate: list[Aggregate] | None = None
    envoy: EnvoyMetrics | None = None
    skip_mtls: bool | None = Field(default=None, alias="skipMTLS")

    @spec_check
    def _check(self, check: Check) -> None:
        if self.path is not None and not self.path.startswith("/"):
            check.add("path", f'must start with "/", got "{self.path}"')
        seen: set[str] = set()
        for i, a in enumerate(self.aggregate or []):
            if a.name in seen:
                check.add(f"aggregate[{i}].name", f'duplicate aggregate "{a.name}"')
            seen.add(a.name)


class MetricsBackend(NamedBackend):
    type: Literal["prometheus"]
    conf: PrometheusConf | None = None


class Metrics(Spec):
    enabled_backend: str | None = None
    backends: list[MetricsBackend] | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        _check_backends(check, self.backends, "enabledBackend", self.enabled_backend)


# --- tracing -------------------------------------------------------------------------------------


class ZipkinConf(Spec):
    url: str = Field(min_length=1)
    trace_id128bit: bool | None = None
    api_version: Literal["httpJson", "httpProto"] | None = None
    shared_span_context: bool | None = None


class DatadogConf(Spec):
    address: str = Field(min_length=1)
    port: Port
    split_service: bool | None = None


_TRACING_CONF: dict[str, type[Spec]] = {"zipkin": ZipkinConf, "datadog": DatadogConf}


class TracingBackend(TypedConfBackend):
    confs = _TRACING_CONF

    type: Literal["zipkin", "datadog"]
    sampling: float | None = Field(default=None, ge=0, le=100)
    conf: dict[str, Any] | None = None


class Tracing(DefaultBackendSection[TracingBackend]):
    pass


class MeshServices(Spec):
    mode: Literal["Disabled", "Everywhere", "ReachableBackends", "Exclusive"] | None = None


class MeshSpec(Spec):
    mtls: Mtls | None = None
    routing: Routing | None = None
    networking: MeshNetworking | None = None
    skip_creating_initial_policies: list[str] | None = None
    constraints: Constraints | None = None
    logging: Logging | None = None
    metrics: Metrics | None = None
    tracing: Tracing | None = None
    mesh_services: MeshServices | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if self.routing and self.routing.zone_egress and not (self.mtls and self.mtls.enabled_backend):
            check.add("routing.zoneEgress", "needs mTLS: set mtls.enabledBackend when zoneEgress is enabled")


MESH = register_type("Mesh", MeshSpec, Scope.GLOBAL, plural="meshes")
