"""The real kumactl 2.14.3 against a real ``atoll cp``: config, apply, get, paging, delete (issue 15).

The whole compatibility corpus (``../shared/compat/kuma-docs``) applies with ``kumactl apply -f``; what
Atoll then serves (its REST answer) and what ``kumactl get ... -o yaml`` prints of it are the file as
kumactl renders any resource (kumactl sends its rendering, so Atoll stores that): ``kri`` and the
times added, durations in Go's form (``30m`` as ``30m0s``: compared as durations), the defaults
kumactl's types fill or drop (``weight: 1`` of a backend ref, ``omitEmptyValues: false``, a gateway's
``type: DELEGATED``, an empty ``status``), and a ZoneIngress's ``availableServices``, which the CP
computes. ``kumactl_view`` applies exactly these rules, to both sides. What kumactl prints then
applies again unchanged with both CLIs (``get -o yaml | apply -f -``). Every type Atoll serves lists in table,
YAML and JSON form, pages with ``--size``/``--offset``, and deletes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from atoll.resources import all_types
from atoll.resources.types import ResourceType, find_type
from tests.compat.kumactl import Kumactl, require_kumactl, table
from tests.e2e.mesh import CpProcess
from tests.helpers import REPO

CORPUS = REPO.parent / "shared" / "compat" / "kuma-docs"
SERVER_MANAGED = ("creationTime", "modificationTime", "kri")
NOT_IN_KUMACTL = {
    "DataplaneInsight",  # kumactl has no get command for it (Kuma's is read-only)
    "VipAllocation",  # Atoll's own record of the VIPs it gave (Kuma keeps them in a ConfigMap/Config)
}


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CpProcess]:
    require_kumactl()
    c = CpProcess(tmp_path_factory.mktemp("cp"), store="memory").start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def kumactl(cp: CpProcess, tmp_path_factory: pytest.TempPathFactory) -> Kumactl:
    return Kumactl(tmp_path_factory.mktemp("kumactl"), cp.url)


GO_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+$")
UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
KUMACTL_DEFAULTS = {"weight": 1, "omitEmptyValues": False, "status": {}}


def kumactl_view(value: Any, key: str = "") -> Any:
    """``value`` as kumactl renders it (the module docstring lists the rules), for comparing."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in KUMACTL_DEFAULTS and v == KUMACTL_DEFAULTS[k]:
                continue
            if (key, k, v) == ("gateway", "type", "DELEGATED") or k in ("availableServices", *SERVER_MANAGED):
                continue
            out[k] = kumactl_view(v, k)
        return out
    if isinstance(value, list):
        return [kumactl_view(v, key) for v in value]
    if isinstance(value, str) and GO_DURATION.match(value):
        return round(sum(float(n) * UNIT_SECONDS[u] for n, u in re.findall(r"([0-9.]+)([a-zµ]+)", value)), 9)
    return value


def singular(rt: ResourceType) -> str:
    """kumactl's command for one resource of ``rt`` (``mesh``, ``external-service``)."""
    return rt.plural.removesuffix("s") if "-" in rt.plural else rt.name.lower()


def shown(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in SERVER_MANAGED}


def where(doc: dict[str, Any]) -> list[str]:
    return ["-m", doc["mesh"]] if "mesh" in doc else []


def atoll_get(cp: CpProcess, rt: ResourceType, doc: dict[str, Any]) -> dict[str, Any]:
    from atoll.api import paths

    r = httpx.get(cp.url + paths.item_path(rt, doc["name"], doc.get("mesh")), timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_config_add_writes_only_the_given_config_file(cp: CpProcess, tmp_path: Path) -> None:
    k = Kumactl(tmp_path, cp.url)
    config = yaml.safe_load(k.config.read_text())
    assert config["currentContext"] == "atoll"
    assert {"name": "atoll", "coordinates": {"apiServer": {"url": cp.url}}} in config["controlPlanes"]
    assert list(k.home.iterdir()) == []  # no ~/.kumactl
    assert k.yaml("get", "meshes")["items"] is not None


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the compatibility corpus is not at {CORPUS}")
@pytest.mark.timeout(900)
def test_corpus_applies_with_kumactl_reads_back_identical_and_round_trips(
    cp: CpProcess, kumactl: Kumactl, tmp_path: Path
) -> None:
    kumactl.ok("apply", "-f", "-", stdin="type: Mesh\nname: default\n---\ntype: Mesh\nname: my-mesh\n")
    files = sorted(CORPUS.glob("*.yaml"))
    assert len(files) > 50
    printed: dict[tuple[str, str | None, str], str] = {}  # the last print of each resource
    differ: dict[str, Any] = {}
    for f in files:
        doc = yaml.safe_load(f.read_text())
        kumactl.ok("apply", "-f", str(f))
        rt = find_type(doc["type"])
        assert rt is not None
        served = atoll_get(cp, rt, doc)
        if kumactl_view(served) != kumactl_view(doc):
            differ[f.name] = ("served", kumactl_view(served), kumactl_view(doc))
        got = kumactl.yaml("get", singular(rt), doc["name"], *where(doc))
        if kumactl_view(got) != kumactl_view(doc):
            differ[f.name] = ("kumactl printed", kumactl_view(got), kumactl_view(doc))
        printed[(doc["type"], doc.get("mesh"), doc["name"])] = yaml.safe_dump(got)
    assert differ == {}

    # get -o yaml | apply -f -: what kumactl printed applies unchanged with kumactl, then with atoll.
    before = {k: yaml.safe_load(text) for k, text in printed.items()}
    stored = {k: shown(atoll_get(cp, find_type(k[0]), d)) for k, d in before.items()}  # type: ignore[arg-type]
    everything = "---\n".join(printed.values())
    kumactl.ok("apply", "-f", "-", stdin=everything)
    out = tmp_path / "printed.yaml"
    out.write_text(everything)
    atoll = subprocess.run(
        [sys.executable, "-m", "atoll.cli.main", "--cp", cp.url, "apply", "-f", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert atoll.returncode == 0, atoll.stdout + atoll.stderr
    after = {k: shown(atoll_get(cp, find_type(k[0]), d)) for k, d in before.items()}  # type: ignore[arg-type]
    assert after == stored


def test_get_every_type_in_table_yaml_and_json(cp: CpProcess, kumactl: Kumactl) -> None:
    kumactl.ok("apply", "-f", "-", stdin="type: Mesh\nname: default\n")
    for rt in all_types():
        if rt.name in NOT_IN_KUMACTL:
            continue
        mesh = ["-m", "default"] if rt.mesh_scoped else []
        r = httpx.get(cp.url + (f"/meshes/default/{rt.plural}" if rt.mesh_scoped else f"/{rt.plural}"), timeout=10)
        want = sorted(i["name"] for i in r.json()["items"])
        as_yaml = kumactl.yaml("get", rt.plural, *mesh)
        as_json = kumactl.json("get", rt.plural, *mesh)
        rows = kumactl.ok("get", rt.plural, *mesh)
        assert sorted(i["name"] for i in as_yaml["items"]) == want, rt.name
        assert sorted(i["name"] for i in as_json["items"]) == want, rt.name
        assert as_yaml["total"] == as_json["total"] == len(want), rt.name
        names = sorted(row["NAME"] for row in table(rows)) if want else []
        assert names == want, (rt.name, rows)


def test_paging_with_size_and_offset(kumactl: Kumactl) -> None:
    docs = "---\n".join(f"type: Mesh\nname: page-{i}\n" for i in range(3))
    kumactl.ok("apply", "-f", "-", stdin=docs)
    every = [i["name"] for i in kumactl.yaml("get", "meshes")["items"]]
    assert {"page-0", "page-1", "page-2"} <= set(every)
    seen = []
    for offset in range(len(every)):
        page = kumactl.yaml("get", "meshes", "--size", "1", "--offset", str(offset))
        assert page["total"] == len(every) and len(page["items"]) == 1
        seen.append(page["items"][0]["name"])
    assert seen == every
    first = kumactl.ok("get", "meshes", "--size", "1")
    assert len(table(first.split("\n\n")[0])) == 1
    assert "--offset=1" in first  # kumactl read Atoll's next page and says how to get it


def test_delete(cp: CpProcess, kumactl: Kumactl) -> None:
    kumactl.ok("apply", "-f", "-", stdin="type: Mesh\nname: default\n")
    es = (
        "type: ExternalService\nmesh: default\nname: httpbin\nnetworking:\n  address: httpbin.org:443\n"
        "tags:\n  kuma.io/service: httpbin\n"
    )
    kumactl.ok("apply", "-f", "-", stdin=es)
    assert httpx.get(cp.url + "/meshes/default/external-services/httpbin", timeout=10).status_code == 200
    assert "deleted ExternalService" in kumactl.ok("delete", "external-service", "httpbin", "-m", "default")
    assert httpx.get(cp.url + "/meshes/default/external-services/httpbin", timeout=10).status_code == 404
    assert httpx.get(cp.url + "/meshes/default/externalservices/httpbin", timeout=10).status_code == 404
    assert 'there is no ExternalService with name "httpbin"' in kumactl.fails(
        "delete", "external-service", "httpbin", "-m", "default"
    )


def test_server_managed_fields_are_ignored_but_an_unknown_field_is_refused_naming_it(
    cp: CpProcess, kumactl: Kumactl
) -> None:
    kumactl.ok("apply", "-f", "-", stdin="type: Mesh\nname: default\n")
    doc = {
        "type": "MeshTimeout",
        "mesh": "default",
        "name": "t",
        "creationTime": "0001-01-01T00:00:00Z",
        "modificationTime": "0001-01-01T00:00:00Z",
        "kri": "kri_mt_default___t_",
        "status": {},
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "5s"}}],
        },
    }
    url = cp.url + "/meshes/default/meshtimeouts/t"
    bad = httpx.put(url, json={**doc, "colour": "blue"}, timeout=10)
    assert bad.status_code == 400, bad.text
    assert [p["field"] for p in bad.json()["invalid_parameters"]] == ["colour"]
    wrong = httpx.put(url, json={**doc, "kri": 7, "status": "up"}, timeout=10)
    assert {p["field"] for p in wrong.json()["invalid_parameters"]} == {"kri", "status"}, wrong.text
    good = httpx.put(url, json=doc, timeout=10)
    assert good.status_code == 201, good.text
    stored = good.json()
    assert "kri" not in stored and "status" not in stored
    assert not stored["creationTime"].startswith("0001")
