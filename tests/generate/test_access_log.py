"""MeshAccessLog -> Envoy access logs: golden files (testdata/policies/access-log-*), ``envoy --mode
validate``, Kuma's placeholders per direction, merging, and what Envoy does with a bad path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import json_format

from atoll.topology import proxy_view
from atoll.topology.settings.access_log import AccessLogSettings, LogBackend, LogFormat, unenforced_backends
from atoll.xds.generate import envoy as e
from atoll.xds.generate import sidecar_resources
from atoll.xds.generate.policies.access_log import (
    DEFAULT_HTTP_FORMAT,
    DEFAULT_TCP_FORMAT,
    PIPE_DIR,
    access_log_pipe,
)
from tests.generate.certs import fixed_identity
from tests.generate.envoy_validate import assert_valid, envoy_validate, static_bootstrap
from tests.generate.golden import assert_golden, load_mesh_view

ACCESS_LOG = """---
type: MeshAccessLog
mesh: default
name: logs
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default:
        backends:
          - type: File
            file: {path: /tmp/atoll-golden/outbound.log}
    - targetRef: {kind: MeshService, name: db}
      default:
        backends:
          - type: Tcp
            tcp:
              address: 127.0.0.1:5170
              format:
                type: Json
                json:
                  - {key: mesh, value: "%KUMA_MESH%"}
                  - {key: from, value: "%KUMA_SOURCE_SERVICE%"}
                  - {key: to, value: "%KUMA_DESTINATION_SERVICE%"}
                  - {key: bytes, value: "%BYTES_SENT%"}
  from:
    - targetRef: {kind: Mesh}
      default:
        backends:
          - type: File
            file:
              path: /tmp/atoll-golden/inbound.log
              format:
                type: Plain
                plain: "{inbound_plain}"
          - type: File
            file:
              path: /tmp/atoll-golden/inbound.json
              format:
                type: Json
                omitEmptyValues: true
                json: [{key: dir, value: "%KUMA_TRAFFIC_DIRECTION%"}, {key: status, value: "%RESPONSE_CODE%"}]
          - type: OpenTelemetry
            openTelemetry: {endpoint: "otel-collector:4317"}
""".replace(
    "{inbound_plain}",
    "%KUMA_TRAFFIC_DIRECTION% %KUMA_SOURCE_ADDRESS% %KUMA_SOURCE_SERVICE%->%KUMA_DESTINATION_SERVICE% %RESPONSE_CODE%",
)

CASES = {"access-log-web-1": "web-1", "access-log-backend-1": "backend-1", "access-log-db-1": "db-1"}


def _resources(proxy: str, extra: str = ACCESS_LOG) -> Any:
    return sidecar_resources(proxy_view(load_mesh_view("mesh-mtls.yaml", extra=extra), proxy), fixed_identity())


@pytest.mark.parametrize("case", list(CASES))
def test_access_log_golden(case: str) -> None:
    resources = _resources(CASES[case])
    assert resources.check_consistent() == []
    rendered = resources.to_dict()
    del rendered["secrets"]  # the same in every case (see testdata/mtls/)
    assert_golden(f"policies/{case}.yaml", rendered)


@pytest.mark.envoy
@pytest.mark.parametrize("case", list(CASES))
def test_access_log_config_passes_envoy_validate(case: str, tmp_path: Path) -> None:
    assert_valid(_validatable(_resources(CASES[case]), tmp_path), tmp_path)


def _validatable(resources: Any, tmp: Path) -> dict[str, Any]:
    """The static bootstrap of ``resources`` with every log path moved under ``tmp``: validate mode
    opens the files, and the Tcp backends' pipe must not be a FIFO a data plane agent left behind
    (opening it for writing would wait for a reader)."""
    text = json.dumps(static_bootstrap(resources))
    for path in ("/tmp/atoll-golden/", f"{PIPE_DIR}/atoll-accesslog-"):
        text = text.replace(path, f"{tmp}/" + ("" if path.endswith("/") else "atoll-accesslog-"))
    return dict(json.loads(text))


def _logs(listener: Any) -> list[file_pb2.FileAccessLog]:
    """The file access logs of every HCM / tcp_proxy of ``listener`` (each chain's, in order)."""
    out: list[file_pb2.FileAccessLog] = []
    for chain in listener.filter_chains:
        for f in chain.filters:
            if f.name == e.HCM_FILTER:
                config: Any = hcm_pb2.HttpConnectionManager()
            elif f.name == e.TCP_PROXY_FILTER:
                config = tcp_proxy_pb2.TcpProxy()
            else:
                continue
            f.typed_config.Unpack(config)
            for log in config.access_log:
                one = file_pb2.FileAccessLog()
                log.typed_config.Unpack(one)
                out.append(one)
    return out


def _listener(resources: Any, prefix: str, port: int) -> Any:
    (found,) = [ln for ln in resources.listeners if ln.name.startswith(prefix) and ln.name.endswith(f":{port}")]
    return found


def test_placeholders_are_filled_per_direction_and_operators_pass_through() -> None:
    res = _resources("web-1")
    outbound = _logs(_listener(res, "outbound:", 10001))
    assert [log.path for log in outbound] == ["/tmp/atoll-golden/outbound.log"]
    expected = DEFAULT_HTTP_FORMAT.replace("%KUMA_MESH%", "default").replace("%KUMA_SOURCE_SERVICE%", "web")
    expected = expected.replace("%KUMA_DESTINATION_SERVICE%", "backend")
    expected = expected.replace("%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%", "10.0.0.1")
    assert outbound[0].log_format.text_format_source.inline_string == expected + "\n"
    assert "%KUMA" not in expected and "%REQ(:METHOD)%" in expected

    # db is tcp: its MeshService entry replaces the Mesh entry's backends (arrays replace when merged)
    (db,) = _logs(_listener(res, "outbound:", 10002))
    assert db.path == access_log_pipe("default", "web-1")
    wrapped = json_format.MessageToDict(db.log_format.json_format)
    assert wrapped == {
        "address": "127.0.0.1:5170",
        "message": {"mesh": "default", "from": "web", "to": "db", "bytes": "%BYTES_SENT%"},
    }

    # inbound: the source is unknown, the destination is the inbound's own service; one log per
    # enforced backend (the OpenTelemetry one is left out) on each mTLS filter chain
    inbound = _logs(_listener(res, "inbound:", 8080))
    assert [log.path for log in inbound] == ["/tmp/atoll-golden/inbound.log", "/tmp/atoll-golden/inbound.json"]
    assert inbound[0].log_format.text_format_source.inline_string == "INBOUND 10.0.0.1:0 unknown->web %RESPONSE_CODE%\n"
    assert json_format.MessageToDict(inbound[1].log_format.json_format) == {
        "dir": "INBOUND",
        "status": "%RESPONSE_CODE%",
    }
    assert inbound[1].log_format.omit_empty_values is True


def test_tcp_listeners_get_the_default_tcp_format() -> None:
    extra = ACCESS_LOG.replace("name: db}", "name: nothing}")  # db's outbound now has the Mesh entry
    (db,) = _logs(_listener(_resources("web-1", extra), "outbound:", 10002))
    expected = DEFAULT_TCP_FORMAT.replace("%KUMA_MESH%", "default").replace("%KUMA_SOURCE_SERVICE%", "web")
    expected = expected.replace("%KUMA_DESTINATION_SERVICE%", "db")
    expected = expected.replace("%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%", "10.0.0.1")
    assert db.log_format.text_format_source.inline_string == expected + "\n"
    # on the inbound of a tcp service: the tcp_proxy logs, inbound values
    (text, _json) = _logs(_listener(_resources("db-1"), "inbound:", 5432))
    assert text.log_format.text_format_source.inline_string == "INBOUND 10.0.0.5:0 unknown->db %RESPONSE_CODE%\n"


def test_more_specific_policy_replaces_the_backends() -> None:
    specific = """---
type: MeshAccessLog
mesh: default
name: web-only
spec:
  targetRef: {kind: MeshService, name: web}
  to:
    - targetRef: {kind: Mesh}
      default:
        backends: [{type: File, file: {path: /tmp/atoll-golden/web.log}}]
"""
    res = _resources("web-1", ACCESS_LOG + specific)
    assert [log.path for log in _logs(_listener(res, "outbound:", 10001))] == ["/tmp/atoll-golden/web.log"]
    # the MeshService db entry of the Mesh-wide policy is more specific than web-only's Mesh entry
    assert [log.path for log in _logs(_listener(res, "outbound:", 10002))] == [access_log_pipe("default", "web-1")]


def test_only_opentelemetry_backends_means_no_access_log_and_shared_listeners_stay_clean() -> None:
    otel_only = """---
type: MeshAccessLog
mesh: default
name: otel
spec:
  targetRef: {kind: Mesh}
  from:
    - targetRef: {kind: Mesh}
      default:
        backends: [{type: OpenTelemetry, openTelemetry: {endpoint: "otel:4317"}}]
"""
    view = proxy_view(load_mesh_view("mesh-mtls.yaml", extra=otel_only), "web-1")
    assert view.inbounds[0].policies.access_log == AccessLogSettings(backends=(), skipped=1)
    assert _logs(_listener(_resources("web-1", otel_only), "inbound:", 8080)) == []
    # generating with logs first must not leave logs in the memoized listeners others share
    _resources("web-1")
    plain = _resources("web-1", "")
    assert all(_logs(ln) == [] for ln in plain.listeners)


def test_settings_read_the_merged_default() -> None:
    settings = AccessLogSettings.from_conf(
        {
            "backends": [
                {"type": "File", "file": {"path": "/a", "format": {"type": "Plain", "plain": "%KUMA_MESH%"}}},
                {"type": "Tcp", "tcp": {"address": "h:1"}},
            ]
        }
    )
    assert settings.backends == (
        LogBackend("File", "/a", LogFormat(plain="%KUMA_MESH%")),
        LogBackend("Tcp", "h:1", LogFormat()),
    )
    assert AccessLogSettings.from_conf({"backends": []}) == AccessLogSettings()
    assert len({settings, AccessLogSettings.from_conf({"backends": [{"type": "Tcp", "tcp": {"address": "h:1"}}]})}) == 2


@pytest.mark.envoy
def test_envoy_refuses_a_path_in_a_missing_directory(tmp_path: Path) -> None:
    """What real Envoy does with a log file it cannot open: config refused with a clear message
    (over xDS that is a NACK of the listener: tests/e2e/test_access_log.py)."""
    bad = ACCESS_LOG.replace("/tmp/atoll-golden/outbound.log", str(tmp_path / "missing" / "out.log"))
    (tmp_path / "logs").mkdir()
    done = envoy_validate(_validatable(_resources("web-1", bad), tmp_path / "logs"), tmp_path)
    assert done.returncode != 0
    assert f"unable to open file '{tmp_path / 'missing' / 'out.log'}'" in done.stdout + done.stderr


def test_unenforced_backends_are_named_for_the_write_warning() -> None:
    from atoll.resources import decode_all

    (policy,) = decode_all(ACCESS_LOG)
    assert unenforced_backends(policy.spec_dict()) == ("from[0].default.backends[2]: OpenTelemetry",)


@pytest.mark.envoy
def test_an_unknown_placeholder_reaches_envoy_which_refuses_it(tmp_path: Path) -> None:
    """Only Kuma's placeholders are filled by the CP; anything else is Envoy's to judge (over xDS a
    refused operator is a NACK of that listener, like a file Envoy cannot open)."""
    typo = ACCESS_LOG.replace("%KUMA_TRAFFIC_DIRECTION% %KUMA_SOURCE_ADDRESS%", "%KUMA_SOURCE_IP%")
    (inbound, _) = _logs(_listener(_resources("web-1", typo), "inbound:", 8080))
    assert inbound.log_format.text_format_source.inline_string == "%KUMA_SOURCE_IP% unknown->web %RESPONSE_CODE%\n"
    done = envoy_validate(_validatable(_resources("web-1", typo), tmp_path), tmp_path)
    assert done.returncode != 0
    assert "Not supported field in StreamInfo: KUMA_SOURCE_IP" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("top", "logged"),
    [
        ("{kind: MeshService, name: backend}", {"backend-1"}),
        ("{kind: MeshSubset, tags: {kuma.io/service: db}}", {"db-1"}),
        ("{kind: Dataplane, name: web-1}", {"web-1"}),
        ("{kind: Mesh}", {"web-1", "backend-1", "db-1"}),
    ],
)
def test_top_level_target_ref_selects_the_inbounds_that_log(top: str, logged: set[str]) -> None:
    policy = f"""---
type: MeshAccessLog
mesh: default
name: some
spec:
  targetRef: {top}
  from:
    - targetRef: {{kind: Mesh}}
      default: {{backends: [{{type: File, file: {{path: /tmp/in.log}}}}]}}
"""
    found = {
        proxy
        for proxy in ("web-1", "backend-1", "db-1")
        if any(_logs(ln) for ln in _resources(proxy, policy).listeners if ln.name.startswith("inbound:"))
    }
    assert found == logged
