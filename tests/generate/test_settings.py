"""Typed policy settings (atoll.topology.settings): what each kind's JSON folds into, and the
properties the generators' memos rely on (frozen, hashable, shared between proxies)."""

from __future__ import annotations

import dataclasses

import pytest

from atoll.resources import decode_all
from atoll.topology import MeshView, PolicySettings, proxy_view
from atoll.topology.settings import fold_settings
from atoll.topology.settings.circuit_breaker import (
    CircuitBreakerSettings,
    ConnectionLimits,
    Consecutive,
    Detectors,
    OutlierDetection,
    SuccessRate,
)
from atoll.topology.settings.conf import overlay
from atoll.topology.settings.health_check import HealthCheckSettings, HttpCheck, TcpCheck
from atoll.topology.settings.load_balancing import (
    FailoverRule,
    HashPolicy,
    LoadBalancer,
    LoadBalancingSettings,
    LocalityAwareness,
)
from atoll.topology.settings.retry import BackOff, RetryBlock, RetrySettings
from atoll.topology.settings.timeout import HttpTimeouts, TimeoutSettings


def test_durations_are_parsed_into_seconds_at_fold_time() -> None:
    got = fold_settings(
        {
            "MeshTimeout": [
                {"connectionTimeout": "2s", "http": {"requestTimeout": "1m30s"}},
                {"idleTimeout": "250ms", "http": {"maxStreamDuration": "0s"}},
            ]
        }
    )
    assert got.timeout == TimeoutSettings(
        connection_timeout=2.0,
        idle_timeout=0.25,
        http=HttpTimeouts(request_timeout=90.0, max_stream_duration=0.0),
    )
    assert got.retry is None and got.load_balancing is None


def test_every_kind_reads_its_fields() -> None:
    assert HealthCheckSettings.from_conf(
        {"interval": "10s", "tcp": {"send": "cGluZw==", "receive": ["cG9uZw=="]}, "http": {"expectedStatuses": [200]}}
    ) == HealthCheckSettings(
        interval=10.0, http=HttpCheck(expected_statuses=(200,)), tcp=TcpCheck(send="cGluZw==", receive=("cG9uZw==",))
    )
    assert CircuitBreakerSettings.from_conf(
        {
            "connectionLimits": {},
            "outlierDetection": {"detectors": {"totalFailures": {}, "successRate": {"standardDeviationFactor": "1.9"}}},
        }
    ) == CircuitBreakerSettings(
        connection_limits=ConnectionLimits(),
        outlier_detection=OutlierDetection(
            detectors=Detectors(total_failures=Consecutive(), success_rate=SuccessRate(standard_deviation_factor=1.9))
        ),
    )
    assert RetrySettings.from_conf(
        {"tcp": {"maxConnectAttempt": 2}, "http": {"backOff": {"maxInterval": "1s"}}, "grpc": {}}
    ) == RetrySettings(
        tcp_max_connect_attempt=2, http=RetryBlock(back_off=BackOff(base_interval=0.025, max_interval=1))
    )
    assert LoadBalancingSettings.from_conf(
        {
            "loadBalancer": {"type": "Maglev", "maglev": {"tableSize": 7, "hashPolicies": [{"type": "SourceIP"}]}},
            "localityAwareness": {"crossZone": {"failover": [{"to": {"type": "Any"}}]}},
        }
    ) == LoadBalancingSettings(
        load_balancer=LoadBalancer(type="Maglev", table_size=7),
        hash_policies=(),
        locality=LocalityAwareness(failover=(FailoverRule(to_type="Any"),)),
    )
    top = LoadBalancingSettings.from_conf({"hashPolicies": [{"type": "Header", "header": {"name": "x"}}]})
    assert top.hash_policies == (HashPolicy(type="Header", name="x"),)


def test_overlay_is_merge_patch_on_settings() -> None:
    base = OutlierDetection(interval=1.0, detectors=Detectors(total_failures=Consecutive(consecutive=3)))
    patch = OutlierDetection(base_ejection_time=9.0, detectors=Detectors(total_failures=Consecutive()))
    assert overlay(base, patch) == OutlierDetection(
        interval=1.0, base_ejection_time=9.0, detectors=Detectors(total_failures=Consecutive(consecutive=3))
    )
    assert overlay(base, None) is base


def test_settings_are_frozen_and_hashable() -> None:
    settings = fold_settings({"MeshTimeout": [{"idleTimeout": "1s"}]})
    assert hash(settings) == hash(fold_settings({"MeshTimeout": [{"idleTimeout": "1s"}]}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.timeout = None  # type: ignore[misc]
    assert fold_settings({}) == PolicySettings()


MESH = """
type: Mesh
name: default
---
type: MeshTimeout
mesh: default
name: t
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default: {idleTimeout: 7s}
"""


def _dataplane(name: str) -> str:
    return (
        f"---\ntype: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: 10.0.0.1\n  inbound:\n"
        f"    - port: 8080\n      tags: {{kuma.io/service: {name}}}\n  outbound:\n"
        "    - port: 10001\n      tags: {kuma.io/service: backend}\n"
    )


def test_proxies_reaching_a_service_under_the_same_policies_share_one_settings_object() -> None:
    resources = decode_all(MESH + _dataplane("a") + _dataplane("b"))
    mv = MeshView(
        mesh=resources[0],
        dataplanes=tuple(r for r in resources if r.type == "Dataplane"),
        zone="zone-1",
        policies=tuple(r for r in resources if r.type == "MeshTimeout"),
    )
    (a,), (b,) = proxy_view(mv, "a").outbounds, proxy_view(mv, "b").outbounds
    assert a.policies is b.policies
    assert a.policies.timeout == TimeoutSettings(idle_timeout=7.0)
