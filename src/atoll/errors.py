"""The exception tree of Atoll, drawn in one place: every exception class under ``atoll``.

Each line: the class, the module under ``atoll`` it lives in, the side at fault, what it means.
Sides: ``caller`` (who sent the request or input: an API client, a CLI user, a proxy asking to
join), ``peer`` (the other end of a stream or a call: Envoy, a zone or global CP, an agent, the CP
an agent or the CLI talks to), ``operator`` (configuration and environment), ``state`` (what the
store holds), ``local`` (Atoll itself: a bug or a gap).

    Exception
    ├── AtollError                 errors                  -         base of every error raised on purpose
    │   ├── InvalidInput           errors                  caller    input is wrong: one FieldError a problem
    │   ├── StoreError             errors                  state     a store operation could not be done
    │   │   ├── NotFound           errors                  state     the resource does not exist
    │   │   ├── AlreadyExists      errors                  state     create of a resource that exists
    │   │   └── Conflict           errors                  state     the version given is not the stored one
    │   ├── ConfigError            errors                  operator  a CP, agent or CLI setting is wrong
    │   ├── AuthError              errors                  caller    a caller could not be let in
    │   │   ├── Unauthenticated    errors                  caller    no credentials, or ones that do not verify
    │   │   └── Forbidden          errors                  caller    valid credentials that do not allow this
    │   ├── CertificateError       errors                  operator  a PEM certificate or key is unusable
    │   ├── InvalidToken           errors                  caller    a token does not verify; ``code`` says why
    │   ├── CpError                dp.cp_client            -         an agent's call to its CP failed
    │   │   ├── CpRejected         dp.cp_client            caller    the CP refused the agent's request (4xx)
    │   │   └── CpUnavailable      dp.cp_client            peer      no usable answer from the CP in time
    │   ├── TproxyError            dp.transparent_proxy    operator  the transparent proxy's rules could not be applied
    │   ├── PeerProtocolError      errors                  peer      a stream's peer broke the protocol (ADS, KDS)
    │   ├── WireError              kds.wire                peer      a KDS resource from the peer is unreadable
    │   ├── ZoneRejected           kds.zones               peer      a zone's KDS stream is refused at open
    │   ├── XdsError               xds.server.protocol     -         base of the xDS server's errors
    │   │   └── StreamRejected     xds.server.grpc_server  peer      a proxy's ADS stream is refused at open
    │   ├── InconsistentSnapshot   xds.server.snapshot     local     a snapshot lacks what it references
    │   └── GenerationError        xds.generate.sidecar    local     no config for a proxy (also a ValueError)
    │       └── MissingIdentity    xds.generate.sidecar    local     an mTLS mesh and no identity given
    ├── ValueError
    │   ├── Problems               resources.base          caller    a model validator's problems, with paths
    │   ├── MalformedNodeId        resources.proxy_id      peer      a string that is no proxy's node id
    │   ├── TextLimit              resources.parsing       caller    JSON/YAML nested too deep, or an alias bomb
    │   └── UnsupportedExternal    xds.generate.external   operator  an ExternalService setting not supported
    ├── HttpError                  api.errors              caller    an HTTP error answer; its status says more
    ├── ErrorReply                 cli.client              peer      the CP answered the CLI with an error
    ├── Unreachable                cli.client              peer      nothing answered at the CP's address
    ├── ComponentError             cp.components           operator  a CP component could not start or run
    ├── RelayTimeout               proxies.admin_requests  peer      a proxy's agent did not answer in time
    ├── Exhausted                  proxies.vips            operator  the VIP CIDR has too few free addresses
    ├── _Stopped                   dp.agent                -         not an error: ends the agent's task group
    └── click.UsageError
        └── UnknownType            cli.render              caller    the user named no known resource type

Who raises what, and what becomes of it:

- ``InvalidInput``: resource decoding and validation (``atoll.resources``; model validators raise
  ``Problems``, which pydantic wraps and ``resources.base`` turns into one ``FieldError`` each), store
  paging, the token endpoints' bodies. The REST API answers 400 with every field at once.
- ``StoreError`` and its children: every store backend; the API answers 404 / 409 / 500.
- ``ConfigError``: ``cp.config``, the store factory and backends at open, the CLI's config; the CP
  and the CLI exit with the message.
- ``Unauthenticated`` / ``Forbidden``: ``security`` (tokens, admin check); the API answers 401 /
  403, the ADS server ``UNAUTHENTICATED`` / ``PERMISSION_DENIED`` (through ``StreamRejected``).
- ``CertificateError`` (``pki.certificates``): a CA, certificate or key that does not parse, match or
  verify. ``InvalidToken`` (``pki.jwt_tokens``): ``security`` turns it into ``Unauthenticated`` or a
  ``FieldError`` of the token request.
- ``CpRejected`` / ``CpUnavailable``: the agent's CP client (bootstrap, health reports); the CLI
  prints ``CpRejected.lines()`` and exits, probes retry on ``CpError``.
- ``PeerProtocolError``: the ADS and KDS protocol machines (``xds.server.protocol``,
  ``kds.protocol``); the pump ends only that stream (``INVALID_ARGUMENT``), naming the peer as at
  fault, and a zone reconnects. KDS: a ``WireError`` makes the receiver NACK the resources it names;
  ``ZoneRejected`` refuses a zone's stream with its gRPC status. xDS: ``StreamRejected`` is raised by
  the stream-open hook (``proxies.lifecycle``) and answered with its gRPC status.
- ``TextLimit``: ``resources.parsing`` (nesting depth, YAML alias expansion), raised before a value is
  built; the codec, the API's body parsing and the KDS receiver turn it into ``InvalidInput`` (400) or a
  ``WireError``, the ADS stream-open hook into ``StreamRejected`` (``INVALID_ARGUMENT``).
- ``MalformedNodeId``: ``NodeId.parse``; the ADS stream-open hook refuses the stream with it
  (``StreamRejected``, ``INVALID_ARGUMENT``).
- ``GenerationError`` / ``UnsupportedExternal``: the generators, as ``InconsistentSnapshot`` the
  snapshot cache; the reconciler logs them, that proxy keeps its last configuration and its insight
  says why (``configError``); no other proxy is affected.
- ``HttpError`` (``api.errors``) is the REST API's own answer; ``ErrorReply`` / ``Unreachable``
  (``cli.client``) and ``UnknownType`` end a CLI command with a message and an exit code.
- ``ComponentError``: a CP component's start (address, port, server); the supervisor stops the CP.
  ``RelayTimeout``: a proxy's agent that does not answer an admin request through its CP (``inspect
  --config-dump``); the API answers 404.

A handler of ``AtollError`` catches the first branch only. The classes outside it are caught by
the layer that raises them or by the process that owns them; two must be what they are:
``Problems`` a ``ValueError`` (pydantic wraps only those), ``UnknownType`` click's usage error (so
that click prints the usage). ``tests/test_exception_tree.py`` checks this drawing against the
classes in the tree: a class added, moved or re-based fails it until the drawing says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
        return InvalidInput([FieldError(join_path(prefix, e.path), e.message) for e in self.errors], title=self.title)


def join_path(prefix: str, path: str) -> str:
    """``a`` + ``b`` -> ``a.b``; ``a`` + ``[0].b`` -> ``a[0].b``; empty parts vanish."""
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


class CertificateError(AtollError):
    """A certificate or key is unusable: unparsable, not signed by the CA, outside its validity."""


TokenFailure = Literal["malformed", "unknown-key", "bad-signature", "wrong-kind", "revoked", "expired", "not-yet-valid"]
"""Which check a token failed (``InvalidToken.code``), in the order ``atoll.pki.jwt_tokens`` runs them."""


class InvalidToken(AtollError):
    """A token that does not verify; ``code`` says which check failed, the message says why."""

    def __init__(self, code: TokenFailure, reason: str) -> None:
        self.code: TokenFailure = code
        self.reason = reason
        super().__init__(reason)
