"""``atoll inspect dataplane NAME`` at a global CP: a zone's Dataplane is stored there as
``NAME-<hash>`` with ``kuma.io/display-name: NAME`` (``atoll.kds.names``); the display name finds it
when one zone has that name, and lists the candidates when several do. ``atoll delete mesh --force``."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.kds.names import hashed_name
from tests.cli.conftest import Cp
from tests.cli.test_cli_e2e import Atoll, dataplane

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def atoll(cp: Cp, tmp_path: Path) -> Atoll:
    return Atoll(cp.url, tmp_path)


def synced(name: str, zone: str, mesh: str, address: str) -> str:
    """A Dataplane as global stores a zone's copy (labels as ``atoll.kds.names.from_zone`` sets them)."""
    labels = f"labels:\n  kuma.io/display-name: {name}\n  kuma.io/zone: {zone}\n"
    return dataplane(hashed_name(name, zone, mesh), mesh, address).replace(f"mesh: {mesh}\n", f"mesh: {mesh}\n{labels}")


def test_the_display_name_finds_the_one_synced_dataplane_and_lists_candidates_when_several(atoll: Atoll) -> None:
    mesh = "display-names"
    atoll.ok("apply", "-f", "-", stdin=f"type: Mesh\nname: {mesh}\n")
    docs = [synced("frontend", "east", mesh, "10.0.0.1"), synced("backend", "east", mesh, "10.0.0.2")]
    docs.append(synced("backend", "west", mesh, "10.0.0.3"))
    atoll.ok("apply", "-f", "-", stdin="---\n".join(docs))
    out = atoll.ok("inspect", "dataplane", "frontend", "-m", mesh)
    assert f"name: {hashed_name('frontend', 'east', mesh)}" in out
    assert atoll.ok("inspect", "dataplane", hashed_name("backend", "west", mesh), "-m", mesh)  # the stored name too
    err = atoll.fail("inspect", "dataplane", "backend", "-m", mesh)
    east, west = hashed_name("backend", "east", mesh), hashed_name("backend", "west", mesh)
    listed = ", ".join(sorted([f"{east} (zone east)", f"{west} (zone west)"]))
    assert f"2 Dataplanes in mesh {mesh} are named backend: {listed}; give one of those" in err
    assert "Dataplane nothing not found in mesh" in atoll.fail("inspect", "dataplane", "nothing", "-m", mesh)


def test_deleting_a_mesh_with_dataplanes_needs_force(atoll: Atoll) -> None:
    mesh = "busy-mesh"
    atoll.ok("apply", "-f", "-", stdin=f"type: Mesh\nname: {mesh}\n---\n" + dataplane("web-1", mesh))
    err = atoll.fail("delete", "mesh", mesh)
    assert "unable to delete mesh, there are still some dataplanes attached (1: web-1)" in err
    assert f"atoll delete mesh {mesh} --force" in err
    atoll.ok("delete", "mesh", mesh, "--force")
    assert mesh not in atoll.names("meshes")
