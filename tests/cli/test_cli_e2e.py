"""The real `atoll` CLI, run as a subprocess, against a real control plane process (`atoll cp`).

One control plane (memory store, the ``cp`` fixture of ``conftest``) serves the whole module; every
test uses its own mesh names so that tests do not see each other's resources.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import Cp, base_env
from tests.helpers import ATOLL, free_port

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def atoll(cp: Cp, tmp_path: Path) -> Atoll:
    return Atoll(cp.url, tmp_path)


class Atoll:
    """Runs the CLI with a private client config file; ``--cp`` is added unless ``cp=None``."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp
        self.env = base_env(tmp / "client.yaml")

    def __call__(self, *args: str, cp: str | None = "", stdin: str | None = None) -> Result:
        address = self.url if cp == "" else cp
        argv = [*ATOLL, *(["--cp", address] if address else []), *args]
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=self.env, timeout=60)
        return Result(p.returncode, p.stdout, p.stderr)

    def ok(self, *args: str, **kw: str | None) -> str:
        r = self(*args, **kw)
        assert r.code == 0, f"atoll {' '.join(args)} failed ({r.code}):\n{r.out}\n{r.err}"
        assert "Traceback" not in r.err
        return r.out

    def fail(self, *args: str, code: int = 1, **kw: str | None) -> str:
        r = self(*args, **kw)
        assert r.code == code, f"atoll {' '.join(args)}: expected exit {code}, got {r.code}:\n{r.out}\n{r.err}"
        assert "Traceback" not in r.err
        return r.err

    def file(self, name: str, text: str) -> str:
        p = self.tmp / name
        p.write_text(text)
        return str(p)

    def names(self, type_name: str, *args: str, cp: str | None = "") -> list[str]:
        data = json.loads(self.ok("get", type_name, *args, "-o", "json", cp=cp))
        return sorted(d["name"] for d in data["items"])


def mesh(name: str) -> str:
    return f"type: Mesh\nname: {name}\n"


def dataplane(name: str, mesh: str, address: str = "10.0.0.1", service: str = "web", extra: str = "") -> str:
    return f"""\
type: Dataplane
name: {name}
mesh: {mesh}
networking:
  address: {address}
  inbound:
    - port: 8080
      tags:
        kuma.io/service: {service}
        kuma.io/protocol: http{extra}
"""


def permission(name: str, mesh: str) -> str:
    return f"""\
type: MeshTrafficPermission
name: {name}
mesh: {mesh}
spec:
  targetRef:
    kind: MeshService
    name: web
  from:
    - targetRef:
        kind: Mesh
      default:
        action: Allow
"""


def docs(*parts: str) -> str:
    return "---\n".join(parts)


# --- the happy path -----------------------------------------------------------------------------


def test_apply_get_delete_round_trip(atoll: Atoll) -> None:
    # Dataplanes first in the file: apply still writes the Mesh first.
    f = atoll.file(
        "all.yaml",
        docs(
            dataplane("web-1", "rt", "10.0.0.1"),
            dataplane("web-2", "rt", "10.0.0.2", service="api"),
            permission("allow-web", "rt"),
            mesh("rt"),
        ),
    )
    assert atoll.ok("apply", "-f", f).splitlines() == [
        "mesh/rt created",
        "dataplane/web-1 created (mesh rt)",
        "dataplane/web-2 created (mesh rt)",
        "meshtrafficpermission/allow-web created (mesh rt)",
    ]
    assert atoll.ok("apply", "-f", f).splitlines() == [
        "mesh/rt unchanged",
        "dataplane/web-1 unchanged (mesh rt)",
        "dataplane/web-2 unchanged (mesh rt)",
        "meshtrafficpermission/allow-web unchanged (mesh rt)",
    ]
    changed = atoll.file("changed.yaml", dataplane("web-1", "rt", "10.0.0.9"))
    assert atoll.ok("apply", "-f", changed) == "dataplane/web-1 updated (mesh rt)\n"

    # Tables: every type spelling, type-specific columns.
    table = atoll.ok("get", "dataplanes", "-m", "rt")
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "MESH", "ADDRESS", "SERVICES", "AGE"]
    rows = [line.split() for line in lines[2:]]
    assert [r[:4] for r in rows] == [["web-1", "rt", "10.0.0.9", "web"], ["web-2", "rt", "10.0.0.2", "api"]]
    assert rows[0][4].endswith("s")
    for spelling in ("Dataplane", "DATAPLANES"):
        again = atoll.ok("get", spelling, "--mesh", "rt").splitlines()
        assert [line.split()[:4] for line in again] == [line.split()[:4] for line in lines]

    policies = atoll.ok("get", "meshtrafficpermissions", "-m", "rt").splitlines()
    assert policies[0].split() == ["NAME", "MESH", "TARGETREF", "AGE"]
    assert policies[2].split()[:3] == ["allow-web", "rt", "MeshService/web"]

    meshes = atoll.ok("get", "meshes").splitlines()
    assert meshes[0].split() == ["NAME", "MTLS", "AGE"]
    assert any(line.split()[:2] == ["rt", "off"] for line in meshes[2:])

    # YAML and JSON: the documents themselves.
    listed = list(yaml.safe_load_all(atoll.ok("get", "dataplanes", "-m", "rt", "-o", "yaml")))
    assert [d["name"] for d in listed] == ["web-1", "web-2"]
    assert listed[0]["networking"]["address"] == "10.0.0.9"
    assert "creationTime" in listed[0]
    as_json = json.loads(atoll.ok("get", "dataplanes", "-m", "rt", "-o", "json"))
    assert as_json["total"] == 2 and [d["name"] for d in as_json["items"]] == ["web-1", "web-2"]
    one = yaml.safe_load(atoll.ok("get", "dataplane", "web-2", "-m", "rt", "-o", "yaml"))
    assert (one["type"], one["name"], one["mesh"]) == ("Dataplane", "web-2", "rt")
    assert one["networking"]["inbound"][0]["tags"]["kuma.io/service"] == "api"
    assert json.loads(atoll.ok("get", "mesh", "rt", "-o", "json"))["name"] == "rt"
    one_table = atoll.ok("get", "dataplane", "web-2", "-m", "rt").splitlines()
    assert one_table[2].split()[:4] == ["web-2", "rt", "10.0.0.2", "api"]

    # Across meshes.
    assert atoll.names("dataplanes", "--all-meshes") >= ["web-1", "web-2"]

    # Delete.
    assert atoll.ok("delete", "dataplane", "web-1", "-m", "rt") == "dataplane/web-1 deleted (mesh rt)\n"
    assert atoll.names("dataplanes", "-m", "rt") == ["web-2"]
    err = atoll.fail("get", "dataplane", "web-1", "-m", "rt")
    assert err.splitlines() == ["Error: not found", '  dataplane "web-1" does not exist in mesh "rt"']
    err = atoll.fail("delete", "dataplane", "web-1", "-m", "rt")
    assert err.startswith("Error: not found")


def test_apply_from_stdin_with_vars_and_several_files(atoll: Atoll) -> None:
    m = atoll.file("mesh.yaml", mesh("vars"))
    template = dataplane("web-{{ n }}", "vars", "{{ address }}")
    out = atoll.ok("apply", "-f", m, "-f", "-", "--var", "n=1", "--var", "address=10.1.1.1", stdin=template)
    assert out.splitlines() == ["mesh/vars created", "dataplane/web-1 created (mesh vars)"]
    got = json.loads(atoll.ok("get", "dataplane", "web-1", "-m", "vars", "-o", "json"))
    assert got["networking"]["address"] == "10.1.1.1"
    err = atoll.fail("apply", "-f", "-", stdin=template)
    assert 'stdin: variable "n" is not set: pass --var n=VALUE' in err


def test_empty_list_says_so(atoll: Atoll) -> None:
    atoll.ok("apply", "-f", atoll.file("m.yaml", mesh("empty")))
    r = atoll("get", "dataplanes", "-m", "empty")
    assert r.code == 0 and r.out == ""
    assert r.err == 'No dataplanes found in mesh "empty".\n'
    assert json.loads(atoll.ok("get", "dataplanes", "-m", "empty", "-o", "json")) == {"total": 0, "items": []}


def test_dry_run_writes_nothing(atoll: Atoll) -> None:
    f = atoll.file("dry.yaml", docs(mesh("dry"), dataplane("d-1", "dry")))
    assert atoll.ok("apply", "--dry-run", "-f", f).splitlines() == [
        "mesh/dry created (dry run)",
        "dataplane/d-1 created (mesh dry, dry run)",
    ]
    assert "dry" not in atoll.names("meshes")
    atoll.ok("apply", "-f", f)
    changed = atoll.file("dry2.yaml", docs(mesh("dry"), dataplane("d-1", "dry", "10.9.9.9")))
    assert atoll.ok("apply", "--dry-run", "-f", changed).splitlines() == [
        "mesh/dry unchanged (dry run)",
        "dataplane/d-1 updated (mesh dry, dry run)",
    ]
    got = json.loads(atoll.ok("get", "dataplane", "d-1", "-m", "dry", "-o", "json"))
    assert got["networking"]["address"] == "10.0.0.1"


# --- bad input changes nothing ------------------------------------------------------------------


def test_invalid_yaml(atoll: Atoll) -> None:
    f = atoll.file("bad.yaml", "type: Mesh\nname: [broken\n")
    err = atoll.fail("apply", "-f", f)
    assert err.splitlines()[0] == "Error: invalid input: nothing was applied"
    assert "invalid YAML: line" in err


def test_unknown_type(atoll: Atoll) -> None:
    err = atoll.fail("get", "gizmos", code=2)
    assert 'unknown resource type "gizmos"; known types:' in err
    assert "dataplanes" in err and "meshtrafficpermissions" in err
    f = atoll.file("gizmo.yaml", "type: Gizmo\nname: g\n")
    err = atoll.fail("apply", "-f", f)
    assert 'type: unsupported type "Gizmo"' in err


def test_unknown_field_names_its_path(atoll: Atoll) -> None:
    atoll.ok("apply", "-f", atoll.file("m.yaml", mesh("uf")))
    f = atoll.file("uf.yaml", dataplane("u-1", "uf", extra="\n      bogus: 1"))
    err = atoll.fail("apply", "-f", f)
    assert "  networking.inbound[0].tags.bogus: " not in err  # `bogus` sits beside tags, not in them
    assert "  networking.inbound[0].bogus: unknown field" in err.splitlines()
    assert atoll.names("dataplanes", "-m", "uf") == []


def test_missing_mesh(atoll: Atoll) -> None:
    # Mesh-scoped document without a mesh field.
    no_mesh = atoll.file("nomesh.yaml", dataplane("n-1", "x").replace("mesh: x\n", ""))
    assert "  mesh: required for Dataplane" in atoll.fail("apply", "-f", no_mesh).splitlines()
    # A mesh that exists neither on the server nor in the input: nothing of the file is written.
    f = atoll.file("mm.yaml", docs(mesh("mm-ok"), dataplane("n-1", "nowhere")))
    err = atoll.fail("apply", "-f", f)
    assert err.splitlines() == [
        "Error: invalid input: nothing was applied",
        '  [1].mesh: mesh "nowhere" does not exist: apply a Mesh named "nowhere" first',
    ]
    assert "mm-ok" not in atoll.names("meshes")
    # Listing in a mesh that does not exist is a server error, printed plainly.
    assert atoll.fail("get", "dataplanes", "-m", "nowhere").startswith("Error: ")


def test_duplicate_names_in_one_apply(atoll: Atoll) -> None:
    f = atoll.file("dup.yaml", docs(mesh("dup"), dataplane("d", "dup"), dataplane("d", "dup", "10.0.0.2")))
    err = atoll.fail("apply", "-f", f)
    assert '[2].name: duplicate: Dataplane "d" appears twice in the input' in err
    assert "dup" not in atoll.names("meshes")


def test_one_bad_document_among_good_ones_changes_nothing(atoll: Atoll) -> None:
    atoll.ok("apply", "-f", atoll.file("m.yaml", docs(mesh("mixed"), dataplane("keep", "mixed"))))
    before = atoll.ok("get", "dataplanes", "-m", "mixed", "-o", "yaml")
    bad_timeout = """\
type: MeshTimeout
name: t
mesh: mixed
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        http:
          requestTimeout: 5x
"""
    f = atoll.file(
        "mixed.yaml",
        docs(
            mesh("mixed-new"),
            dataplane("keep", "mixed", "10.7.7.7"),
            dataplane("new", "mixed"),
            bad_timeout,
            "type: Mesh\nname: Bad_Name\n",
        ),
    )
    err = atoll.fail("apply", "-f", f).splitlines()
    assert err[0] == "Error: invalid input: nothing was applied"
    assert any(line.startswith("  [3].spec.to[0].default.http.requestTimeout: ") and "5x" in line for line in err)
    assert any(line.startswith("  [4].name: ") for line in err)
    assert atoll.ok("get", "dataplanes", "-m", "mixed", "-o", "yaml") == before
    assert "mixed-new" not in atoll.names("meshes")
    assert "t" not in atoll.names("meshtimeouts", "-m", "mixed")


# --- where the CLI sends requests ---------------------------------------------------------------


def test_contexts_choose_the_control_plane(atoll: Atoll) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    assert "No control planes" in atoll.ok("config", "list", cp=None)
    atoll.ok("config", "add-cp", "real", "--address", atoll.url, cp=None)
    atoll.ok("config", "add-cp", "dead", "--address", dead, cp=None)
    # add-cp made "dead" current: requests go there.
    err = atoll.fail("get", "meshes", cp=None)
    assert err.startswith(f'Error: cannot reach the control plane at {dead} (from context "dead")')
    atoll.ok("config", "use-cp", "real", cp=None)
    atoll.ok("apply", "-f", atoll.file("m.yaml", mesh("ctx")), cp=None)
    assert "ctx" in atoll.names("meshes", cp=None)
    listing = atoll.ok("config", "list", cp=None).splitlines()
    assert listing[0].split() == ["CURRENT", "NAME", "ADDRESS", "TOKEN"]
    assert ["*", "real", atoll.url] in [line.split() for line in listing]
    # ATOLL_CP beats the context; --cp beats both.
    atoll.env["ATOLL_CP"] = dead
    assert dead in atoll.fail("get", "meshes", cp=None)
    assert "ctx" in atoll.names("meshes", cp=atoll.url)
    del atoll.env["ATOLL_CP"]
    atoll.ok("config", "remove-cp", "real", cp=None)
    err = atoll.fail("config", "use-cp", "real", cp=None)
    assert err == 'Error: no control plane named "real"; known: dead\n'


def test_connection_refused(atoll: Atoll) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    err = atoll.fail("get", "meshes", cp=dead)
    assert len(err.splitlines()) == 1
    assert f"cannot reach the control plane at {dead} (from --cp): connection refused" in err
    assert "atoll cp" in err and "--cp" in err
    f = atoll.file("m.yaml", mesh("never"))
    assert f"control plane at {dead}" in atoll.fail("apply", "-f", f, cp=dead)
    out = atoll.ok("version", cp=dead)
    assert out.splitlines() == ["Client: atoll 0.1.0", f"Server: not reachable at {dead} (connection refused)"]


def test_version_shows_the_server(atoll: Atoll) -> None:
    lines = atoll.ok("version").splitlines()
    assert lines[0] == "Client: atoll 0.1.0"
    assert lines[1].lower().startswith("server: atoll 0.1.0") and "standalone" in lines[1] and atoll.url in lines[1]


# --- help and error presentation ----------------------------------------------------------------


def test_help_as_a_process(atoll: Atoll) -> None:
    out = atoll.ok("--help", cp=None)
    assert out.startswith("Usage: atoll")
    for command in ("apply", "get", "delete", "version", "cp", "dp", "demo", "config"):
        assert f"\n  {command} " in out
    assert "Examples:" in out


def test_debug_shows_a_traceback_only_when_asked(atoll: Atoll) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    r = atoll("--debug", "get", "meshes", cp=dead)
    assert r.code == 1 and "Traceback" in r.err and "cannot reach the control plane" in r.err


def test_cp_config_errors_are_plain(atoll: Atoll) -> None:
    err = atoll.fail("cp", "--mode", "zone", "--store", "memory", cp=None)
    assert err == "Error: zone: required with mode=zone (the name of this zone)\n"
    err = atoll.fail("cp", "--api-port", "http", cp=None, code=2)
    assert "'http' is not a valid integer" in err
