"""The real kumactl 2.14.3 inspects a live multi-zone Atoll deployment, and its tokens admit Atoll's proxies.

One global CP, one zone CP, and in the zone a sidecar, a zone ingress and a zone egress, each an
``atoll dp run`` with a real Envoy, each admitted with a token ``kumactl generate dataplane-token`` or
``kumactl generate zone-token`` issued at global (so the tokens work for Atoll's agents). Then every
``kumactl inspect`` command reads the live state from Kuma's paths: ``dataplanes`` (with ``--tag``),
``meshes``, ``services``, ``zoneingresses`` and ``zoneegresses`` at the zone, ``zones`` at global,
and one proxy's Envoy config dump, stats and clusters (``inspect dataplane NAME --type ...``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.kumactl import Kumactl, require_kumactl, table
from tests.e2e.multizone import MultiZone
from tests.helpers import free_port, wait_until

ZONE = "zone-1"


@pytest.fixture(scope="module")
def mz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiZone]:
    require_kumactl()
    m = MultiZone(tmp_path_factory.mktemp("mz"))
    try:
        m.start_global()
        yield m
    finally:
        m.stop()


@pytest.fixture(scope="module")
def at_global(mz: MultiZone, tmp_path_factory: pytest.TempPathFactory) -> Kumactl:
    return Kumactl(tmp_path_factory.mktemp("kumactl-global"), mz.glob.url)


@pytest.fixture(scope="module")
def at_zone(mz: MultiZone, at_global: Kumactl, tmp_path_factory: pytest.TempPathFactory) -> Kumactl:
    """Zone-1 with a sidecar ``web-1``, ``ingress-1`` and ``egress-1``, admitted by kumactl's tokens."""
    at_global.ok("apply", "-f", "-", stdin="type: Mesh\nname: default\n")
    mz.add_zone(ZONE)
    token = at_global.ok("generate", "dataplane-token", "--mesh", "default", "--name", "web-1", "--valid-for", "1h")
    assert token.count(".") == 2 and not token.lstrip().startswith("{"), token  # the bare JWT, as Kuma prints it
    mz.service(ZONE, "web-1", "web", token=token.strip())
    for kind in ("ingress", "egress"):
        port = free_port()
        doc = {
            "type": f"Zone{kind.capitalize()}",
            "name": f"{kind}-1",
            "networking": {"address": "127.0.0.1", "port": port},
        }
        if kind == "ingress":
            doc["networking"] |= {"advertisedAddress": "127.0.0.1", "advertisedPort": port}
        zone_token = at_global.ok("generate", "zone-token", "--zone", ZONE, "--scope", kind, "--valid-for", "1h")
        mz._agent(ZONE, doc, zone_token.strip(), proxy_type=kind)
    return Kumactl(tmp_path_factory.mktemp("kumactl-zone"), mz.zones[ZONE].url)


KEYS = {"services": "SERVICE", "meshes": "MESH"}  # the column naming a row (else NAME)


def rows(k: Kumactl, what: str, *args: str) -> dict[str, dict[str, str]]:
    """``kumactl inspect WHAT ...`` as table rows by the column that names them."""
    return {r[KEYS.get(what, "NAME")]: r for r in table(k.ok("inspect", what, *args))}


def test_inspect_dataplanes_meshes_and_services_at_the_zone(mz: MultiZone, at_zone: Kumactl) -> None:
    web = wait_until(
        lambda: (
            rows(at_zone, "dataplanes").get("web-1", {}).get("STATUS") == "Online"
            and rows(at_zone, "dataplanes")["web-1"]
        ),
        timeout=60,
        what="web-1 Online in kumactl inspect dataplanes",
    )
    assert "kuma.io/service=web" in web["TAGS"]
    assert web["LAST CONNECTED AGO"] not in ("never", "")
    assert web["ENVOY VERSION"].count(".") == 2
    assert list(rows(at_zone, "dataplanes", "--tag", "kuma.io/service=web")) == ["web-1"]
    assert rows(at_zone, "dataplanes", "--tag", "kuma.io/service=nope") == {}
    overview = at_zone.yaml("inspect", "dataplanes")["items"][0]
    assert overview["type"] == "DataplaneOverview" and overview["dataplane"]["networking"]["inbound"]
    assert overview["dataplaneInsight"]["subscriptions"][0]["connectTime"]
    insight = mz.zones[ZONE].get("/meshes/default/dataplane-insights/web-1")
    (subscription,) = insight["subscriptions"]
    assert "disconnectTime" not in subscription and subscription["status"]["total"]["responsesAcknowledged"]

    default = rows(at_zone, "meshes")["default"]
    assert default["DATAPLANES"] == "1/1"
    mesh_insight = at_zone.yaml("inspect", "meshes")["items"][0]
    assert mesh_insight["services"]["internal"] == 1 and mesh_insight["dataplanesByType"]["standard"] == {
        "total": 1,
        "online": 1,
    }

    web_service = rows(at_zone, "services")["web"]
    assert (web_service["STATUS"], web_service["DATAPLANES"]) == ("Online", "1/1")


def test_inspect_zone_ingresses_and_egresses_at_the_zone(at_zone: Kumactl) -> None:
    for what, name in (("zoneingresses", "ingress-1"), ("zoneegresses", "egress-1")):
        row = wait_until(
            lambda w=what, n=name: rows(at_zone, w).get(n), timeout=60, what=f"{name} in kumactl inspect {what}"
        )
        assert row["STATUS"] == "Online", (what, row)
        assert row["ENVOY VERSION"].count(".") == 2


def test_inspect_zones_at_global(mz: MultiZone, at_global: Kumactl, at_zone: Kumactl) -> None:
    zone = wait_until(lambda: rows(at_global, "zones").get(ZONE), timeout=60, what="zone-1 in kumactl inspect zones")
    assert zone["STATUS"] == "Online", zone
    assert zone["ZONE-CP VERSION"], zone
    assert at_global.yaml("inspect", "zones")["items"][0]["zoneInsight"]["subscriptions"][0]["connectTime"]
    synced = wait_until(lambda: rows(at_global, "dataplanes"), timeout=60, what="the zone's dataplanes at global")
    assert len(synced) == 1, synced


def test_inspect_one_dataplane_config_dump_stats_and_clusters(at_zone: Kumactl) -> None:
    wait_until(
        lambda: rows(at_zone, "dataplanes").get("web-1", {}).get("STATUS") == "Online", timeout=60, what="web-1 Online"
    )
    dump = json.loads(at_zone.ok("inspect", "dataplane", "web-1", "--type", "config-dump"))
    kinds = {c["@type"].rsplit(".", 1)[-1] for c in dump["configs"]}
    assert {"BootstrapConfigDump", "ClustersConfigDump", "ListenersConfigDump"} <= kinds
    assert "EndpointsConfigDump" not in kinds  # EDS only with --include-eds, as Kuma's
    with_eds = json.loads(at_zone.ok("inspect", "dataplane", "web-1", "--type", "config-dump", "--include-eds"))
    assert "EndpointsConfigDump" in {c["@type"].rsplit(".", 1)[-1] for c in with_eds["configs"]}
    stats = json.loads(at_zone.ok("inspect", "dataplane", "web-1", "--type", "stats"))
    assert any(s.get("name") == "server.live" for s in stats["stats"])
    clusters = json.loads(at_zone.ok("inspect", "dataplane", "web-1", "--type", "clusters"))
    assert clusters["cluster_statuses"]
    missing = at_zone.fails("inspect", "dataplane", "nope", "--type", "config-dump")
    assert "nope" in missing


def test_generate_dataplane_token_refuses_a_workload(at_global: Kumactl, tmp_path: Path) -> None:
    err = at_global.fails("generate", "dataplane-token", "--mesh", "default", "--workload", "w", "--valid-for", "1h")
    assert "workload" in err


def test_inspect_one_dataplane_policies_and_served_config(at_zone: Kumactl) -> None:
    """``kumactl inspect dataplane NAME`` (its default ``--type policies``) prints the policies matched
    at each inbound and outbound; ``--type config`` prints the configuration the zone CP serves."""
    wait_until(
        lambda: rows(at_zone, "dataplanes").get("web-1", {}).get("STATUS") == "Online", timeout=60, what="web-1 Online"
    )
    printed = at_zone.ok("inspect", "dataplane", "web-1")
    timeouts = at_zone.yaml("get", "meshtimeouts")["items"]
    timeout = next(i["name"] for i in timeouts if "timeout-all-default" in i["name"])
    inbound = printed.split("INBOUND ", 1)[1]  # "INBOUND 127.0.0.1:PORT(web):" then kind and policy lines
    assert inbound.startswith("127.0.0.1:") and "(web):" in inbound.splitlines()[0], printed
    assert "  MeshTimeout\n    " + timeout + "\n" in inbound, printed
    missing = at_zone.fails("inspect", "dataplane", "nope")
    assert "nope" in missing

    served = json.loads(at_zone.ok("inspect", "dataplane", "web-1", "--type", "config"))["xds"]
    listeners = [listener["name"] for listener in served["listeners"]]
    clusters = [cluster["name"] for cluster in served["clusters"]]
    (port,) = [ib["port"] for ib in at_zone.yaml("get", "dataplane", "web-1")["networking"]["inbound"]]
    assert f"inbound:127.0.0.1:{port}" in listeners, listeners
    assert clusters, served
    refused = at_zone.fails("inspect", "dataplane", "web-1", "--type", "config", "--shadow")
    assert "shadow" in refused
