"""The proxy's resource file: templating, local validation, admin port; the gRPC bootstrap document."""

from __future__ import annotations

import pytest

from atoll.dp import grpc_bootstrap, load_proxy_resource, parse_vars, render_template
from atoll.dp.agent import set_admin_address
from atoll.dp.document import admin_port_of
from atoll.errors import InvalidInput

DP = """\
type: Dataplane
mesh: default
name: {{ name }}
networking:
  address: 127.0.0.1
  admin:
    port: {{admin}}
  inbound:
    - port: {{ port }}
      servicePort: 8080
      tags:
        kuma.io/service: web
"""


def test_render_replaces_every_placeholder() -> None:
    out = render_template(DP, {"name": "web-1", "admin": "9901", "port": "10000"})
    assert "name: web-1" in out and "port: 9901" in out and "- port: 10000" in out
    assert "{{" not in out


def test_unreplaced_placeholders_are_named_once_each() -> None:
    with pytest.raises(InvalidInput) as e:
        render_template(DP + "# {{ port }} again\n", {"name": "web-1"})
    paths = [fe.path for fe in e.value.errors]
    assert paths == ["{{ admin }}", "{{ port }}"]
    assert 'template variable "port" has no value; pass --dataplane-var port=VALUE' in str(e.value)


def test_malformed_placeholder_is_an_error() -> None:
    with pytest.raises(InvalidInput) as e:
        render_template("name: {{ 1bad }}\n", {})
    assert e.value.errors[0].path == "{{ 1bad }}"


def test_parse_vars() -> None:
    assert parse_vars(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(InvalidInput) as e:
        parse_vars(["novalue"])
    assert e.value.errors[0].path == "--dataplane-var"


def test_load_valid_dataplane() -> None:
    r = load_proxy_resource(DP, {"name": "web-1", "admin": "9901", "port": "10000"})
    assert (r.type, r.mesh, r.name) == ("Dataplane", "default", "web-1")
    assert admin_port_of(r) == 9901


def test_invalid_dataplane_names_the_field() -> None:
    with pytest.raises(InvalidInput) as e:
        load_proxy_resource(DP, {"name": "web-1", "admin": "9901", "port": "70000"})
    assert [str(fe) for fe in e.value.errors] == ["networking.inbound[0].port: port 70000 out of range 1..65535"]


def test_resource_type_must_fit_the_proxy_type() -> None:
    with pytest.raises(InvalidInput) as e:
        load_proxy_resource(DP, {"name": "w", "admin": "9901", "port": "1"}, "ingress")
    assert e.value.errors[0].path == "type"


def test_exactly_one_document() -> None:
    vars_ = {"name": "w", "admin": "9901", "port": "1"}
    with pytest.raises(InvalidInput, match="exactly one resource, found 2"):
        load_proxy_resource(DP + "---\n" + DP, vars_)


def test_admin_address_is_kept_or_injected() -> None:
    boot: dict[str, object] = {"node": {"id": "x"}}
    assert set_admin_address(boot, "127.0.0.1", 9901) == ("127.0.0.1", 9901)
    assert boot["admin"] == {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}}
    camel = {"admin": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": 9555}}}}
    assert set_admin_address(camel, "127.0.0.1", 9901) == ("127.0.0.1", 9555)


def test_grpc_bootstrap_document() -> None:
    doc = grpc_bootstrap(server_uri="127.0.0.1:5678", mesh="default", name="client-1")
    assert doc["xds_servers"] == [
        {"server_uri": "127.0.0.1:5678", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}
    ]
    assert doc["node"]["id"] == "default.client-1"
    assert doc["node"]["cluster"] == "client-1"
