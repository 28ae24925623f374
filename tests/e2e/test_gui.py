"""The GUI in Debian's Chromium (driven by Playwright), against a running global CP and two zones with
real proxies: every page loads and shows the numbers the REST API gives; pages follow a zone going
down and coming back, and a policy applied at global, within about two seconds, without a reload;
the rollout view reaches ACKed in both zones; a browser on a non-loopback address without the admin
token sees the login page and no data. Screenshots of every page go to ``test-artifacts/gui/``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e import netns
from tests.e2e.multizone import MultiZone, allow_all, mtls_mesh
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "gui"
LIVE = 2.5  # "within about two seconds", with a little room for a loaded 2-core machine
OUT_BACKEND = 20481


@pytest.fixture(scope="module")
def host() -> Iterator[netns.ZoneHost]:
    """A non-loopback address of this host (the root side of a test veth pair), for the remote browser."""
    reason = netns.available()
    if reason is not None:
        pytest.skip(reason=reason)
    h = netns.ZoneHost("gui")
    try:
        yield h
    finally:
        h.close()


@pytest.fixture(scope="module")
def mz(tmp_path_factory: pytest.TempPathFactory, host: netns.ZoneHost) -> Iterator[MultiZone]:
    m = MultiZone(tmp_path_factory.mktemp("gui"))
    m.glob.extra_env["ATOLL_API_HOST"] = "0.0.0.0"  # reachable at the veth address too
    try:
        m.start_global()
        m.glob.put(mtls_mesh())
        m.glob.put(allow_all())
        m.add_zone("zone-1")
        m.add_zone("zone-2")
        m.ingress("zone-1")
        m.ingress("zone-2")
        m.service("zone-1", "backend-1", "backend")
        m.service("zone-2", "backend-2a", "backend")
        m.service("zone-2", "backend-2b", "backend")
        m.service("zone-1", "frontend", "frontend", outbound={"backend": OUT_BACKEND})
        wait_until(lambda: _online_proxies(m) == 4, timeout=60, what="four proxies online at global")
        yield m
    except BaseException:
        print(m.dump_logs())
        raise
    finally:
        m.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser, mz: MultiZone) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    p = context.new_page()
    p.set_default_timeout(20_000)
    errors: list[str] = []  # script errors and refused content (the page's CSP) show as console errors
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield p
    finally:
        context.close()
    assert not errors, errors


def _online_proxies(m: MultiZone) -> int:
    items = m.glob.get("/meshes/default/dataplanes+insights")["items"]
    return sum(bool(i["dataplaneInsight"].get("online")) for i in items)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_page(page: Page, mz: MultiZone, route: str) -> None:
    page.goto(f"{mz.glob.url}/gui/#/{route}")
    expect(page.locator("#live")).to_have_text("live updates: on")
    page.evaluate("window.__notReloaded = true")


def cell(page: Page, table: str, row: str, field: str) -> Any:
    return page.locator(f"#{table} tr[{row}] td[data-field='{field}']")


def test_root_redirects_a_browser_to_the_gui(page: Page, mz: MultiZone) -> None:
    page.goto(mz.glob.url + "/")
    assert page.url == mz.glob.url + "/gui/"
    expect(page.locator("#nav")).to_be_visible()
    assert mz.glob.get("/")["product"] == "Atoll"  # API clients still get the JSON index


def test_zones_page_shows_the_rest_numbers(page: Page, mz: MultiZone) -> None:
    open_page(page, mz, "zones")
    rest = {z["name"]: z["zoneInsight"] for z in mz.glob.get("/zones+insights")["items"]}
    dataplanes = mz.glob.get("/meshes/default/dataplanes+insights")["items"]
    for zone in ("zone-1", "zone-2"):
        row = f"data-zone='{zone}'"
        expect(cell(page, "zones-table", row, "state")).to_have_text("online")
        expect(cell(page, "zones-table", row, "version")).to_have_text(rest[zone]["cpVersion"])
        mine = [d for d in dataplanes if d["labels"]["kuma.io/zone"] == zone]
        online = sum(bool(d["dataplaneInsight"]["online"]) for d in mine)
        expect(cell(page, "zones-table", row, "proxies")).to_have_text(f"{online}/{len(mine)}")
        expect(cell(page, "zones-table", row, "ingresses")).to_contain_text(f"1 (ingress-{zone})")
    shot(page, "zones")


def _eds_weights(mz: MultiZone) -> dict[str, int]:
    """What zone-1's CP serves frontend for backend: the weight of each locality (zone)."""
    config = mz.zones["zone-1"].get("/meshes/default/dataplanes/frontend/served-xds")
    out: dict[str, int] = {}
    for cla in config["endpoints"]:
        if not cla["cluster_name"].startswith("backend"):
            continue
        for group in cla["endpoints"]:
            zone = group.get("locality", {}).get("zone", "")
            out[zone] = sum(int(e.get("load_balancing_weight", 1)) for e in group["lb_endpoints"])
    return out


def test_services_page_shows_instances_and_the_eds_weights(page: Page, mz: MultiZone) -> None:
    open_page(page, mz, "meshes?mesh=default")
    row = "data-service='backend'"
    expect(cell(page, "services-table", row, "instances")).to_have_text(re.compile(r"zone-1: 1/1\s*zone-2: 2/2"))
    expect(cell(page, "services-table", row, "protocol")).to_have_text("http")
    expect(cell(page, "services-table", row, "reachable-from")).to_have_text("zone-1, zone-2")
    legend = page.locator("#services-table tr[data-service='backend'] li[data-from='zone-1'] .legend")
    wait_until(lambda: _eds_weights(mz) == {"zone-1": 1, "zone-2": 2}, timeout=30, what="frontend's EDS")
    shown = legend.get_attribute("data-weights")
    assert shown is not None and json.loads(shown) == _eds_weights(mz)
    expect(legend).to_have_text("zone-1 33%, zone-2 67%")
    widths = page.locator("#services-table tr[data-service='backend'] li[data-from='zone-1'] .seg")
    assert [w.evaluate("e => e.style.width") for w in widths.all()] == ["33%", "67%"]
    shot(page, "services")


def test_proxies_page_filters_on_the_server(page: Page, mz: MultiZone) -> None:
    open_page(page, mz, "proxies?mesh=default")
    rest = mz.glob.get("/meshes/default/dataplanes+insights")
    expect(page.locator("#proxies-total")).to_have_attribute("data-total", str(rest["total"]))
    frontend = next(d for d in rest["items"] if d["labels"]["kuma.io/display-name"] == "frontend")
    row = f"data-proxy='{frontend['name']}'"
    expect(cell(page, "proxies-table", row, "state")).to_have_text("online")
    expect(cell(page, "proxies-table", row, "envoy")).to_have_text(frontend["dataplaneInsight"]["envoyVersion"])
    expect(cell(page, "proxies-table", row, "outbounds")).to_have_text(f"backend:{OUT_BACKEND}")
    cert = frontend["dataplaneInsight"]["mTLS"]  # issued by zone-1, synced up with the insight
    expect(cell(page, "proxies-table", row, "certificate")).to_have_text(
        f"serial {cert['certificateSerial']}, expires {cert['certificateExpirationTime']}"
    )
    page.fill("#zone", "zone-2")
    page.select_option("#state", "online")
    page.click("form.filters button[type=submit]")
    expect(page.locator("#proxies-total")).to_have_attribute("data-total", "2")
    assert "zone=zone-2" in page.url and "state=online" in page.url
    page.locator("#proxies-table button.link").first.click()
    expect(page.locator("#detail-title")).to_be_focused()
    shot(page, "proxies")


def test_zone_cp_shows_its_own_view_with_global_kinds_read_only(page: Page, mz: MultiZone) -> None:
    zone = mz.zones["zone-1"]
    page.goto(f"{zone.url}/gui/#/zones")
    expect(page.locator("#cp-info")).to_contain_text("zone control plane of zone zone-1")
    expect(page.locator("#zones-table tbody tr")).to_have_count(1)
    local = zone.get("/meshes/default/dataplanes+insights")
    online = sum(bool(d["dataplaneInsight"]["online"]) for d in local["items"])
    expect(cell(page, "zones-table", "data-zone='zone-1'", "proxies")).to_have_text(f"{online}/{local['total']}")
    shot(page, "zone-cp-zones")
    page.goto(f"{zone.url}/gui/#/policies?mesh=default&kind=MeshTrafficPermission&name=allow-all")
    expect(page.locator("#read-only")).to_contain_text("edit it there")
    expect(page.locator("#policy-yaml")).to_have_attribute("readonly", "")
    expect(page.get_by_role("button", name="Apply")).to_have_count(0)
    shot(page, "zone-cp-policies")
    page.goto(f"{zone.url}/gui/#/proxies?mesh=default&name=frontend")
    expect(page.locator("#proxies-total")).to_have_attribute("data-total", "1")
    page.get_by_role("button", name="details").click()
    expect(page.locator("#detail-certificate")).to_contain_text(re.compile(r"serial [0-9a-f]+, expires 20"))
    page.get_by_role("button", name="Envoy config dump").click()
    expect(page.locator("pre.dump")).to_contain_text("configs", timeout=30_000)
    shot(page, "zone-cp-proxy")


def test_policies_page_shows_yaml_and_the_selected_proxies(page: Page, mz: MultiZone) -> None:
    open_page(page, mz, "policies?mesh=default&kind=MeshTrafficPermission&name=allow-all")
    reach = mz.glob.get("/meshes/default/meshtrafficpermissions/allow-all/_resources/dataplanes")
    expect(page.locator("#reach-table tbody tr")).to_have_count(reach["total"])
    expect(page.locator("#policy-yaml")).to_have_value(re.compile(r"type: MeshTrafficPermission"))
    shot(page, "policies")


def test_policies_are_created_and_deleted_from_the_gui(page: Page, mz: MultiZone) -> None:
    open_page(page, mz, "policies?mesh=default&kind=MeshRetry")
    yaml_text = (
        "type: MeshRetry\nmesh: default\nname: gui-made\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n"
        "    - targetRef:\n        kind: Mesh\n      default:\n        http:\n          numRetries: 2\n"
    )
    page.fill("#new-name", "gui-made")
    page.fill("#new-yaml", yaml_text)
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#policy-title")).to_have_text("MeshRetry gui-made")
    stored = mz.glob.get("/meshes/default/meshretries/gui-made")
    assert stored["spec"]["to"][0]["default"]["http"]["numRetries"] == 2
    mz.wait_synced("zone-1", "/meshes/default/meshretries/gui-made", "the GUI-made policy")
    page.on("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("#policies-table tr[data-policy='gui-made']")).to_have_count(0)
    names = [i["name"] for i in mz.glob.get("/meshes/default/meshretries")["items"]]
    assert "gui-made" not in names


def test_zone_down_and_back_shows_within_two_seconds(page: Page, mz: MultiZone) -> None:
    open_page(page, mz, "zones")
    state = cell(page, "zones-table", "data-zone='zone-2'", "state")
    expect(state).to_have_text("online")
    mz.zones["zone-2"].stop()
    try:
        wait_until(lambda: not mz.zone_online("zone-2"), timeout=30, what="global sees zone-2 offline")
        seen_by_api = time.monotonic()
        expect(state).to_have_text("offline", timeout=LIVE * 1000)
        print(f"zone-2 offline on the page {time.monotonic() - seen_by_api:.2f} s after the API")
        expect(cell(page, "zones-table", "data-zone='zone-2'", "warnings")).to_contain_text("offline")
        shot(page, "zones-zone-down")
    finally:
        mz.zones["zone-2"].start()
    wait_until(lambda: mz.zone_online("zone-2"), timeout=30, what="zone-2 back online at global")
    seen_by_api = time.monotonic()
    expect(state).to_have_text("online", timeout=LIVE * 1000)
    print(f"zone-2 online on the page {time.monotonic() - seen_by_api:.2f} s after the API")
    assert page.evaluate("window.__notReloaded") is True
    wait_until(lambda: _online_proxies(mz) == 4, timeout=60, what="zone-2's proxies back")


def test_policy_rollout_reaches_acked_in_both_zones(page: Page, mz: MultiZone) -> None:
    open_page(page, mz, "rollout?mesh=default")
    policy = {
        "type": "MeshTimeout",
        "mesh": "default",
        "name": "gui-rollout",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "from": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "33s"}}],
        },
    }
    mz.glob.put(policy)
    applied = time.monotonic()
    expect(page.locator("#rollout-policy")).to_contain_text("MeshTimeout gui-rollout", timeout=LIVE * 1000)
    print(f"the new policy on the rollout page {time.monotonic() - applied:.2f} s after it was applied")
    for zone in ("zone-1", "zone-2"):
        expect(cell(page, "rollout-zones", f"data-zone='{zone}'", "state")).to_have_text("ACKed", timeout=30_000)
    reach = mz.glob.get("/meshes/default/meshtimeouts/gui-rollout/_resources/dataplanes")
    expect(page.locator("#rollout-proxies tbody tr")).to_have_count(reach["total"])
    assert page.evaluate("window.__notReloaded") is True
    shot(page, "rollout")


def test_remote_browser_without_token_sees_only_the_login(
    browser: Browser, mz: MultiZone, host: netns.ZoneHost
) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 700})
    try:
        p = context.new_page()
        p.set_default_timeout(20_000)
        answers: list[tuple[str, int]] = []
        p.on("response", lambda r: answers.append((r.url, r.status)))
        p.goto(f"http://{host.outer_ip}:{mz.glob.api_port}/gui/#/zones")
        expect(p.locator("#login")).to_be_visible()
        expect(p.locator("#nav")).to_be_hidden()
        expect(p.locator("#page")).to_be_hidden()
        text = p.locator("body").inner_text()
        assert "zone-1" not in text and "backend" not in text
        assert any(u.endswith("/gui/api/session") and s == 401 for u, s in answers)
        assert all(s in (200, 401) for u, s in answers), answers
        assert not any(s == 200 and "/gui/api/" in u for u, s in answers)
        shot(p, "login")
        token = (mz.glob.data_dir / "admin-token").read_text().strip()
        p.fill("#token", token)
        p.click("#login-form button")
        expect(cell(p, "zones-table", "data-zone='zone-1'", "state")).to_have_text("online")
        assert token not in p.url
        assert p.evaluate("sessionStorage.getItem('atoll.adminToken')") == token
    finally:
        context.close()
