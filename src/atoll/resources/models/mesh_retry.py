"""MeshRetry: retries of outbound TCP connections, HTTP requests and gRPC calls (``to[]`` only)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Literal

from pydantic import Field

from atoll.resources.base import Check, Duration, Spec, Tags, parse_duration, spec_check
from atoll.resources.models.policy import PolicyItem, ToPolicySpec, register_policy
from atoll.resources.models.targetref import TO_KINDS, TOP_KINDS_GW, RefRules

HTTP_RETRY_ON = (
    "5xx",
    "GatewayError",
    "Reset",
    "Retriable4xx",
    "ConnectFailure",
    "EnvoyRatelimited",
    "RefusedStream",
    "Http3PostConnectFailure",
    "HttpMethodConnect",
    "HttpMethodDelete",
    "HttpMethodGet",
    "HttpMethodHead",
    "HttpMethodOptions",
    "HttpMethodPatch",
    "HttpMethodPost",
    "HttpMethodPut",
    "HttpMethodTrace",
)
GrpcRetryOn = Literal["Canceled", "DeadlineExceeded", "Internal", "ResourceExhausted", "Unavailable"]
_STATUS_CODES = {s.value for s in HTTPStatus}


class Tcp(Spec):
    max_connect_attempt: int = Field(ge=1)


class BackOff(Spec):
    base_interval: Duration | None = None
    max_interval: Duration | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        check.one_of(self, "base_interval", "max_interval")
        if self.base_interval is not None and parse_duration(self.base_interval) <= 0:
            check.add("baseInterval", "must be greater than zero")
        if (
            self.base_interval is not None
            and self.max_interval is not None
            and parse_duration(self.max_interval) < parse_duration(self.base_interval)
        ):
            check.add("maxInterval", "must not be less than baseInterval")


class ResetHeader(Spec):
    name: str = Field(min_length=1)
    format: Literal["Seconds", "UnixTimestamp"]


class RateLimitedBackOff(Spec):
    reset_headers: list[ResetHeader]
    max_interval: Duration | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if self.max_interval is not None and parse_duration(self.max_interval) <= 0:
            check.add("maxInterval", "must be greater than zero")


class HeaderMatch(Spec):
    type: Literal["Exact", "Present", "RegularExpression", "Absent", "Prefix"] | None = None
    name: str = Field(min_length=1)
    value: str | None = None


class Predicate(Spec):
    predicate: Literal["OmitPreviousHosts", "OmitHostsWithTags", "OmitPreviousPriorities"]
    tags: Tags | None = None
    update_frequency: int | None = Field(default=None, ge=1)

    @spec_check
    def _check(self, check: Check) -> None:
        if self.predicate == "OmitHostsWithTags" and not self.tags:
            check.add("tags", "required with predicate OmitHostsWithTags")


class Http(Spec):
    num_retries: int | None = Field(default=None, ge=0)
    per_try_timeout: Duration | None = None
    back_off: BackOff | None = None
    rate_limited_back_off: RateLimitedBackOff | None = None
    retry_on: list[str] | None = None
    retriable_response_headers: list[HeaderMatch] | None = None
    retriable_request_headers: list[HeaderMatch] | None = None
    host_selection: list[Predicate] | None = None
    host_selection_max_attempts: int | None = Field(default=None, ge=0)

    @spec_check
    def _check(self, check: Check) -> None:
        if not self.model_fields_set:
            check.add("", "must not be empty")
        for i, cond in enumerate(self.retry_on or []):
            if cond in HTTP_RETRY_ON:
                continue
            if cond.isdigit() and int(cond) in _STATUS_CODES:
                continue
            check.add(
                f"retryOn[{i}]",
                f'unknown condition "{cond}"; use one of {", ".join(HTTP_RETRY_ON)} or an HTTP status code',
            )
        prio = [i for i, p in enumerate(self.host_selection or []) if p.predicate == "OmitPreviousPriorities"]
        for i in prio[1:]:
            check.add(f"hostSelection[{i}].predicate", "OmitPreviousPriorities must only be specified once")


class Grpc(Spec):
    num_retries: int | None = Field(default=None, ge=0)
    per_try_timeout: Duration | None = None
    back_off: BackOff | None = None
    rate_limited_back_off: RateLimitedBackOff | None = None
    retry_on: list[GrpcRetryOn] | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        if not self.model_fields_set:
            check.add("", "must not be empty")


class Conf(Spec):
    tcp: Tcp | None = None
    http: Http | None = None
    grpc: Grpc | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        check.one_of(self, "tcp", "http", "grpc")


class MeshRetrySpec(ToPolicySpec[PolicyItem[Conf]]):
    refs = RefRules(top=(*TOP_KINDS_GW, "MeshHTTPRoute"), to=TO_KINDS, gateway_tags=True)


MESH_RETRY = register_policy("MeshRetry", "meshretries", MeshRetrySpec)
