"""ExternalService: a service outside the mesh that mesh services reach by its ``kuma.io/service`` tag.

Universal form (flattened): ``networking{address host:port, tls{enabled, caCert, clientCert,
clientKey, allowRenegotiation, serverName | sni, skipHostnameVerification}, disableHostDNSEntry}``,
``tags{kuma.io/service (required), kuma.io/protocol, kuma.io/zone}``. TLS material is a data source:
exactly one of ``secret``, ``file``, ``inline`` (base64) or ``inlineString``.
"""

from __future__ import annotations

import base64

from pydantic import field_validator

from atoll.resources.base import Base64, Check, HostPort, Spec, Tags, spec_check, split_host_port
from atoll.resources.models.dataplane import SERVICE_TAG, service_tags
from atoll.resources.types import Scope, register_type


class DataSource(Spec):
    secret: str | None = None
    file: str | None = None
    inline: Base64 | None = None
    inline_string: str | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if len(self.model_fields_set) != 1:
            check.add("", "exactly one of secret, file, inline, inlineString has to be defined")


def _check_ca(check: Check, ca: DataSource) -> None:
    """The CA that verifies the external server: a file path, or PEM certificate text (not empty)."""
    if ca.file is not None and not ca.file.strip():
        check.add("caCert.file", "must be the path of a PEM file, got an empty string")
    text: str | None = None
    where = "caCert.inlineString"
    if ca.inline_string is not None:
        text = ca.inline_string
    elif ca.inline is not None:
        where = "caCert.inline"
        try:
            text = base64.b64decode(ca.inline).decode()
        except (ValueError, UnicodeDecodeError):
            text = ""
    if text is not None:
        if not text.strip():
            check.add(where, "is empty: give the PEM certificate(s) of the CA that signed the server's certificate")
        elif "-----BEGIN CERTIFICATE-----" not in text:
            check.add(where, "must hold a PEM certificate (-----BEGIN CERTIFICATE-----)")


class Tls(Spec):
    enabled: bool | None = None
    ca_cert: DataSource | None = None
    client_cert: DataSource | None = None
    client_key: DataSource | None = None
    allow_renegotiation: bool | None = None
    server_name: str | None = None
    sni: str | None = None
    skip_hostname_verification: bool | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if self.server_name is not None and self.sni is not None:
            check.add("sni", "must not be set together with serverName (they mean the same)")
        if (self.client_cert is None) != (self.client_key is None):
            missing = "clientKey" if self.client_key is None else "clientCert"
            check.add(missing, "clientCert and clientKey must be set together")
        if self.ca_cert is not None:
            _check_ca(check, self.ca_cert)

    @property
    def sni_name(self) -> str | None:
        return self.server_name if self.server_name is not None else self.sni


class EsNetworking(Spec):
    address: HostPort
    tls: Tls | None = None
    disable_host_dns_entry: bool | None = None

    @property
    def host_port(self) -> tuple[str, int]:
        return split_host_port(self.address)


class ExternalServiceSpec(Spec):
    networking: EsNetworking
    tags: Tags

    _tags = field_validator("tags")(service_tags("an external service"))

    @spec_check
    def _check(self, check: Check) -> None:
        zone = self.tags.get("kuma.io/zone")
        if zone is not None and not zone.strip():
            check.add("tags.kuma.io/zone", "must name a zone (or be left out to reach the service from every zone)")

    @property
    def service(self) -> str:
        return self.tags[SERVICE_TAG]


EXTERNAL_SERVICE = register_type(
    "ExternalService", ExternalServiceSpec, Scope.MESH, plural="external-services", plural_aliases=("externalservices",)
)
