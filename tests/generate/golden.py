"""Golden files: compare generated data with the YAML file under ``testdata/``; ``UPDATE_GOLDEN=1``
rewrites the files instead (review the diff before keeping it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from atoll.resources import Resource, decode_all
from atoll.resources.models.dataplane import DataplaneSpec
from atoll.resources.models.mesh import MeshSpec
from atoll.topology import MeshView

TESTDATA = Path(__file__).parent / "testdata"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # a shared sub-dict is written out, not as &id001
        return True


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)


def assert_golden(name: str, data: Any) -> None:
    """``data`` rendered as YAML equals ``testdata/<name>`` exactly (or rewrite it with UPDATE_GOLDEN=1)."""
    path = TESTDATA / name
    text = dump(data)
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"golden file {path} is missing: run with UPDATE_GOLDEN=1 to create it"
    expected = path.read_text()
    assert text == expected, f"{path} differs from the generated config (UPDATE_GOLDEN=1 to accept):\n{text}"


def load_mesh_view(filename: str = "mesh.yaml", *, zone: str = "zone-1", extra: str = "") -> MeshView:
    """A MeshView of the Mesh, Dataplanes, ZoneIngresses and policies in ``testdata/<filename>`` + ``extra``."""
    resources = decode_all((TESTDATA / filename).read_text() + extra)
    meshes: list[Resource[MeshSpec]] = [r for r in resources if r.type == "Mesh"]
    dataplanes: list[Resource[DataplaneSpec]] = [r for r in resources if r.type == "Dataplane"]
    ingresses = [r for r in resources if r.type == "ZoneIngress"]
    policies = [r for r in resources if r.type.startswith("Mesh") and r.type != "Mesh"]
    assert len(meshes) == 1
    return MeshView(
        mesh=meshes[0],
        dataplanes=tuple(dataplanes),
        zone=zone,
        zone_ingresses=tuple(ingresses),
        policies=tuple(policies),
    )
