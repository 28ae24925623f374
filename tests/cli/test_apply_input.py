"""`atoll apply` input handling done before any request: files, templating, validation, duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.cli.resources import parse_vars, read_items, substitute
from atoll.errors import InvalidInput

MESH = "type: Mesh\nname: demo\n"
DP = """\
type: Dataplane
name: web-1
mesh: demo
networking:
  address: {{ address }}
  inbound:
    - port: 8080
      tags:
        kuma.io/service: web
"""


def test_substitute_only_plain_names() -> None:
    assert substitute("a: {{ x }}\nb: '{{.Service}}'\n", {"x": "1"}, "f") == "a: 1\nb: '{{.Service}}'\n"
    with pytest.raises(InvalidInput) as e:
        substitute("a: {{ x }} {{y}} {{ y }}", {}, "f.yaml")
    assert [str(fe) for fe in e.value.errors] == [
        'f.yaml: variable "x" is not set: pass --var x=VALUE',
        'f.yaml: variable "y" is not set: pass --var y=VALUE',
    ]


def test_parse_vars() -> None:
    assert parse_vars(("a=1", "b=x=y", "c=")) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(Exception, match="KEY=VALUE"):
        parse_vars(("novalue",))


def test_multi_document_file_with_vars(tmp_path: Path) -> None:
    f = tmp_path / "all.yaml"
    f.write_text(MESH + "---\n" + DP)
    items = read_items((str(f),), {"address": "10.0.0.7"})
    assert [(i.resource.type, i.resource.name, i.label) for i in items] == [
        ("Mesh", "demo", "[0]"),
        ("Dataplane", "web-1", "[1]"),
    ]
    assert items[1].resource.spec.networking.address == "10.0.0.7"


def test_every_problem_of_every_file_is_reported(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text(MESH + "---\ntype: Mesh\nname: Bad_Name\n")
    b = tmp_path / "b.yaml"
    b.write_text(DP.replace("{{ address }}", "10.0.0.1").replace("port: 8080", "port: 8080\n      bogus: 1"))
    with pytest.raises(InvalidInput) as e:
        read_items((str(a), str(b)), {})
    paths = [fe.path for fe in e.value.errors]
    assert f"{a}[1].name" in paths
    assert f"{b}.networking.inbound[0].bogus" in paths
    assert e.value.title == "invalid input: nothing was applied"


def test_duplicates_across_files(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text(MESH)
    b = tmp_path / "b.yaml"
    b.write_text(MESH)
    with pytest.raises(InvalidInput) as e:
        read_items((str(a), str(b)), {})
    [fe] = e.value.errors
    assert fe.path == f"{b}.name"
    assert f'Mesh "demo" also appears at {a}' in fe.message


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        read_items((str(tmp_path / "nope.yaml"),), {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: Mesh\nname: [unclosed\n")
    with pytest.raises(InvalidInput, match="invalid YAML: line"):
        read_items((str(bad),), {})


def test_a_directory_stands_for_its_files(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(MESH.replace("demo", "b"))
    (tmp_path / "a.yml").write_text(MESH.replace("demo", "a"))
    (tmp_path / "notes.txt").write_text("not yaml: [")
    items = read_items((str(tmp_path),), {})
    assert [(i.resource.name, i.label) for i in items] == [("a", f"{tmp_path}/a.yml"), ("b", f"{tmp_path}/b.yaml")]
