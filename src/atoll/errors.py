"""The exception tree of Atoll, drawn in one place.

    AtollError                      base of every error Atoll raises on purpose
    ├── InvalidInput                user input is wrong; carries one FieldError per problem
    ├── StoreError                  a store operation could not be done
    │   ├── NotFound                the resource does not exist
    │   ├── AlreadyExists           create of a resource that exists
    │   └── Conflict                optimistic concurrency: the version given is stale
    ├── ConfigError                 a control-plane / agent configuration value is wrong
    └── AuthError                   a caller could not be let in
        ├── Unauthenticated         no credentials, or ones that do not verify (missing/expired/forged token)
        └── Forbidden               valid credentials that do not allow this (token for another proxy)

Errors name the side at fault: ``InvalidInput`` is the caller's, ``StoreError`` describes state.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field. ``path`` is dotted with list indexes: ``spec.to[0].default``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class AtollError(Exception):
    """Base of every error Atoll raises on purpose."""


class InvalidInput(AtollError):
    """User input is wrong. ``errors`` has one entry per problem, each naming its field."""

    def __init__(self, errors: list[FieldError] | FieldError | str, *, title: str = "invalid input") -> None:
        if isinstance(errors, str):
            errors = [FieldError("", errors)]
        elif isinstance(errors, FieldError):
            errors = [errors]
        self.errors: list[FieldError] = list(errors)
        self.title = title
        super().__init__(f"{title}: " + "; ".join(str(e) for e in self.errors))

    def prefixed(self, prefix: str) -> InvalidInput:
        """The same errors with ``prefix`` put before every path (used for multi-document input)."""
        return InvalidInput([FieldError(_join(prefix, e.path), e.message) for e in self.errors], title=self.title)


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    if path.startswith("["):
        return prefix + path
    return f"{prefix}.{path}"


class StoreError(AtollError):
    """A store operation could not be done."""


class NotFound(StoreError):
    """The resource does not exist."""


class AlreadyExists(StoreError):
    """Create of a resource that already exists."""


class Conflict(StoreError):
    """Optimistic concurrency: the version given is not the stored one."""


class ConfigError(AtollError):
    """A configuration value of a control plane or agent is wrong."""


class AuthError(AtollError):
    """A caller (a proxy, a zone, an API client) could not be let in; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Unauthenticated(AuthError):
    """No credentials, or credentials that do not verify (missing, expired, forged, revoked token)."""


class Forbidden(AuthError):
    """Valid credentials that do not allow this (a token for another mesh, Dataplane or zone)."""


class PeerProtocolError(AtollError):
    """The other end of a stream (an Envoy on ADS, a zone or global CP on KDS) sent a message that breaks
    the protocol: the peer is at fault. The pump ends only that stream (INVALID_ARGUMENT)."""
