// Atoll's GUI, the pages: each has setup(params) (its controls, built once per visit) and load(params)
// (its data, fetched again on every live update). Loaded before gui.js, which holds the helpers they
// call (h, api, table, cell...), the login, the event stream and the routing.
"use strict";
// --- pages ----------------------------------------------------------------------------------------

async function meshNames() {
  const meshes = await api("/meshes?size=1000");
  return meshes.items.map((m) => m.name);
}

function select(id, label, options, value, onchange) {
  return h(
    "label",
    { for: id },
    label + " ",
    h(
      "select",
      { id, name: id, onchange },
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))
    )
  );
}

const pages = {
  zones: {
    title: "Zones",
    async setup() {
      return null;
    },
    async load() {
      const zones = await api("/gui/api/zones");
      const rows = zones.items.map((z) => {
        const i = z.zoneInsight || {};
        const sync = i.lastSync || {};
        return h(
          "tr",
          { "data-zone": z.name },
          h("th", { scope: "row" }, z.name),
          cell("state", badge(i.online ? "online" : "offline", i.online ? "ok" : "bad")),
          cell("version", i.cpVersion || "—"),
          cell("connected-since", when(i.connectedSince)),
          cell("sync-global-to-zone", when(sync.globalToZone)),
          cell("sync-zone-to-global", when(sync.zoneToGlobal)),
          cell("proxies", `${z.proxies.online}/${z.proxies.total}`),
          cell("ingresses", `${z.ingresses.online} (${z.ingresses.names.join(", ") || "none"})`),
          cell("egresses", `${z.egresses.online} (${z.egresses.names.join(", ") || "none"})`),
          cell("warnings", z.warnings.length ? h("ul", {}, z.warnings.map((w) => h("li", { class: "warn" }, w))) : "—")
        );
      });
      const headers = ["Zone", "State", "CP version", "Connected since", "Last sync global→zone", "Last sync zone→global",
        "Proxies online/total", "Ingresses online", "Egresses online", "Warnings"];
      const note = zones.mode === "global" ? null : h("p", { class: "note" },
        "This is a zone's own view: other zones are visible at the global control plane.");
      return h("div", {}, note, table(`${zones.total} zone(s)`, headers, rows, { id: "zones-table" }));
    },
  },

  meshes: {
    title: "Meshes and services",
    async setup(p) {
      const names = await meshNames();
      const mesh = p.get("mesh") || names[0] || "";
      p.set("mesh", mesh);
      return h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
        select("mesh", "Mesh", names.map((n) => [n, n]), mesh, (e) => go("meshes", { mesh: e.target.value })));
    },
    async load(p) {
      const [meshes, svc] = await Promise.all([
        api("/gui/api/meshes"),
        p.get("mesh") ? api(`/gui/api/meshes/${enc(p.get("mesh"))}/services`) : null,
      ]);
      const meshRows = meshes.items.map((m) =>
        h("tr", { "data-mesh": m.name }, h("th", { scope: "row" }, m.name),
          cell("mtls", m.mtls ? "on" : "off"), cell("dataplanes", m.dataplanes)));
      const out = [table(`${meshes.total} mesh(es)`, ["Mesh", "mTLS", "Dataplanes"], meshRows, { id: "meshes-table" })];
      if (svc) {
        const rows = svc.items.map((s) => h(
          "tr", { "data-service": s.service },
          h("th", { scope: "row" }, s.service + (s.external ? " (external)" : "")),
          cell("protocol", s.protocol),
          cell("instances", h("ul", {}, Object.entries(s.instances).map(([z, c]) =>
            h("li", { "data-zone": z }, `${z}: ${c.ready}/${c.total}`)))),
          cell("reachable-from", s.reachableFrom.join(", ") || "nowhere"),
          cell("names", s.names.length ? h("ul", {}, s.names.map((n) => h("li", {}, n))) : "—"),
          cell("traffic-share", shares(s.trafficShare))
        ));
        out.push(table(`Services of mesh ${svc.mesh} (${svc.total})`,
          ["Service", "Protocol", "Instances ready/total per zone", "Reachable from", "VIP / DNS name",
            "Where requests from each zone go (EDS weights)"], rows, { id: "services-table" }));
      }
      return h("div", {}, out);
    },
  },

  proxies: {
    title: "Data plane proxies",
    async setup(p) {
      const names = await meshNames();
      const mesh = p.get("mesh") || names[0] || "";
      p.set("mesh", mesh);
      const submit = (e) => {
        e.preventDefault();
        const f = new FormData(e.target);
        go("proxies", Object.fromEntries(["mesh", "zone", "service", "state", "name"].map((k) => [k, f.get(k)])));
      };
      const input = (id, label) => h("label", { for: id }, label + " ",
        h("input", { id, name: id, type: "search", value: p.get(id) || "", maxlength: 253 }));
      return h("form", { class: "filters", onsubmit: submit },
        select("mesh", "Mesh", names.map((n) => [n, n]), mesh),
        input("zone", "Zone"), input("service", "Service"), input("name", "Name contains"),
        select("state", "State", [["", "any"], ["online", "online"], ["offline", "offline"], ["nack", "NACKing"]], p.get("state") || ""),
        h("button", { type: "submit" }, "Filter"));
    },
    async load(p) {
      const mesh = p.get("mesh");
      if (!mesh) return h("p", {}, "No mesh.");
      const q = new URLSearchParams();
      for (const k of ["zone", "service", "state"]) if (p.get(k)) q.set(k, p.get(k));
      if (p.get("name")) q.set("name", p.get("name"));
      const offset = Number(p.get("offset") || 0);
      q.set("offset", offset);
      q.set("size", 50);
      const page = await api(`/gui/api/meshes/${enc(mesh)}/proxies?${q}`);
      const rows = page.items.map((d) => proxyRow(mesh, d));
      const nav = h("p", { class: "pager" },
        h("button", { type: "button", disabled: offset === 0, onclick: () => go("proxies", pageTo(p, Math.max(0, offset - 50))) }, "Previous"),
        ` ${page.total ? offset + 1 : 0}–${offset + page.items.length} of ${page.total} `,
        h("button", { type: "button", disabled: offset + page.items.length >= page.total, onclick: () => go("proxies", pageTo(p, offset + 50)) }, "Next"));
      const headers = ["Proxy", "Zone", "State", "Inbounds", "Outbounds", "xDS (ACKed/sent per type)", "NACKs", "Last NACK error",
        "Certificate", "Envoy", ""];
      const open = selected && selected.mesh === mesh && page.items.find((d) => d.name === selected.name);
      if (open) setTimeout(() => proxyDetail(mesh, open, false), 0); // the open detail follows the refresh
      return h("div", {}, h("p", { id: "proxies-total", "data-total": page.total }, `${page.total} proxies match`),
        table(`Proxies of mesh ${mesh}`, headers, rows, { id: "proxies-table" }), nav);
    },
  },

  policies: {
    title: "Policies",
    async setup(p) {
      const names = await meshNames();
      const mesh = p.get("mesh") || names[0] || "";
      const kind = p.get("kind") || session.policyKinds[0].name;
      p.set("mesh", mesh);
      p.set("kind", kind);
      return h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
        select("mesh", "Mesh", names.map((n) => [n, n]), mesh, (e) => go("policies", { mesh: e.target.value, kind })),
        select("kind", "Kind", session.policyKinds.map((k) => [k.name, k.name]), kind, (e) => go("policies", { mesh, kind: e.target.value })));
    },
    async load(p) {
      const mesh = p.get("mesh");
      const kind = session.policyKinds.find((k) => k.name === p.get("kind"));
      if (!mesh || !kind) return h("p", {}, "No mesh.");
      const base = `/meshes/${enc(mesh)}/${kind.plural}`;
      const list = await api(`${base}?size=1000`);
      const chosen = p.get("name");
      const rows = list.items.map((r) => h("tr", { "data-policy": r.name },
        h("th", { scope: "row" }, h("a", { href: "#/policies?" + new URLSearchParams({ mesh, kind: kind.name, name: r.name }) }, r.name)),
        cell("modified", when(r.modificationTime)),
        cell("rollout", h("a", { href: "#/rollout?" + new URLSearchParams({ mesh, kind: kind.name, name: r.name }) }, "rollout"))));
      const out = [table(`${list.total} ${kind.name} polic${list.total === 1 ? "y" : "ies"} in mesh ${mesh}`, ["Name", "Modified", ""], rows, { id: "policies-table" })];
      const readOnly = session.readOnlyKinds[kind.name];
      if (readOnly) out.push(h("p", { class: "note", id: "read-only" }, `${kind.name} is read-only here: ${readOnly}.`));
      if (chosen) out.push(await policyDetail(base, mesh, kind, chosen, readOnly));
      else if (!readOnly) out.push(newPolicy(base, mesh, kind));
      return h("div", {}, out);
    },
  },

  rollout: {
    title: "Rollout",
    async setup(p) {
      const names = await meshNames();
      const mesh = p.get("mesh") || names[0] || "";
      p.set("mesh", mesh);
      return h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
        select("mesh", "Mesh", names.map((n) => [n, n]), mesh, (e) => go("rollout", { mesh: e.target.value })),
        h("p", {}, "Shows the policy given in the address (from the Policies page), else the one changed last."));
    },
    async load(p) {
      const mesh = p.get("mesh");
      if (!mesh) return h("p", {}, "No mesh.");
      const q = new URLSearchParams();
      if (p.get("kind") && p.get("name")) { q.set("kind", p.get("kind")); q.set("name", p.get("name")); }
      const r = await api(`/gui/api/meshes/${enc(mesh)}/rollout?${q}`);
      if (!r.kind) return h("p", {}, "No policy in this mesh yet.");
      const zoneRows = r.zones.map((z) => h("tr", { "data-zone": z.zone },
        h("th", { scope: "row" }, z.zone), cell("state", badge(z.state, stateClass(z.state))),
        cell("acked", z.ACKed), cell("pending", z.pending), cell("nacked", z.NACKed), cell("total", z.total)));
      const proxyRows = r.items.map((d) => h("tr", { "data-proxy": d.name },
        h("th", { scope: "row" }, d.displayName), cell("zone", d.zone),
        cell("state", badge(d.state, stateClass(d.state))), cell("detail", d.detail)));
      return h("div", {},
        h("p", { id: "rollout-policy" }, `${r.kind} ${r.name} in mesh ${r.mesh}, changed at `, when(r.changedAt)),
        table("Per zone", ["Zone", "State", "ACKed", "Pending", "NACKed", "Selected proxies"], zoneRows, { id: "rollout-zones" }),
        table("Per proxy the policy selects", ["Proxy", "Zone", "State", "Why"], proxyRows, { id: "rollout-proxies" }));
    },
  },
};

function stateClass(state) {
  return state === "ACKed" ? "ok" : state === "NACKed" ? "bad" : "wait";
}

function pageTo(p, offset) {
  const out = Object.fromEntries(p.entries());
  out.offset = offset ? String(offset) : "";
  return out;
}

function shares(byZone) {
  const entries = Object.entries(byZone);
  if (!entries.length) return "—";
  return h("ul", { class: "shares" }, entries.map(([from, weights]) => {
    const total = Object.values(weights).reduce((a, b) => a + b, 0);
    const parts = Object.entries(weights).map(([to, w]) => [to, Math.round((100 * w) / total)]);
    const text = parts.map(([to, pct]) => `${to} ${pct}%`).join(", ");
    return h("li", { "data-from": from },
      h("span", { class: "from" }, `from ${from}: `),
      h("span", { class: "bar", role: "img", "aria-label": `requests from ${from}: ${text}` },
        parts.map(([to, pct], i) => {
          const seg = h("span", { class: "seg seg" + (i % 4), title: `${to} ${pct}%` });
          seg.style.width = `${pct}%`; // set through the DOM: the page's CSP allows no inline style
          return seg;
        })),
      h("span", { class: "legend", "data-weights": JSON.stringify(weights) }, text));
  }));
}

function certificate(mtls) {
  if (!mtls) return "none (no mTLS, or not issued yet)";
  return `serial ${mtls.certificateSerial}, expires ${mtls.certificateExpirationTime}`;
}

function proxyRow(mesh, d) {
  const i = d.dataplaneInsight || {};
  const xds = Object.entries(i.xds || {}).map(([t, s]) =>
    h("li", { class: s.inSync ? "" : "warn" }, `${t}: ${s.lastAckedVersion ? s.lastAckedVersion.slice(0, 8) : "—"}/${s.lastSentVersion ? s.lastSentVersion.slice(0, 8) : "—"}${s.inSync ? "" : " (not in sync)"}`));
  const show = () => proxyDetail(mesh, d);
  return h("tr", { "data-proxy": d.name },
    h("th", { scope: "row" }, h("button", { type: "button", class: "link", onclick: show }, d.displayName)),
    cell("zone", d.zone),
    cell("state", badge(i.online ? "online" : "offline", i.online ? "ok" : "bad")),
    cell("inbounds", d.inbounds.map((x) => `${x.service}:${x.port}${x.ready ? "" : " (not ready)"}`).join(", ") || "—"),
    cell("outbounds", d.outbounds.map((x) => `${x.service}:${x.port}`).join(", ") || "—"),
    cell("xds", xds.length ? h("ul", {}, xds) : "—"),
    cell("nacks", i.nackCount || 0),
    cell("last-nack", i.lastNackError || "—"),
    cell("certificate", certificate(i.mTLS)),
    cell("envoy", i.envoyVersion || "—"),
    cell("links", h("button", { type: "button", onclick: show }, "details")));
}

async function proxyDetail(mesh, d, focus = true) {
  const box = document.getElementById("detail");
  if (!box) return;
  selected = { mesh, name: d.name };
  const path = `/meshes/${enc(mesh)}/dataplanes/${enc(d.name)}`;
  const out = h("section", { "aria-labelledby": "detail-title", class: "detail" },
    h("h3", { id: "detail-title", tabindex: "-1" }, `Proxy ${d.displayName} (zone ${d.zone})`));
  const i = d.dataplaneInsight || {};
  out.append(table("xDS state per type", ["Type", "Sent", "ACKed", "ACKs", "NACKs", "Last NACK error", "In sync"],
    Object.entries(i.xds || {}).map(([t, s]) => h("tr", {}, h("th", { scope: "row" }, t), cell("sent", s.lastSentVersion || "—"),
      cell("acked", s.lastAckedVersion || "—"), cell("acks", s.acks), cell("nacks", s.nacks), cell("error", s.lastNackError || "—"),
      cell("in-sync", s.inSync ? "yes" : "no")))));
  out.append(h("p", { id: "detail-certificate" }, "Certificate: ", certificate(i.mTLS),
    i.mTLS ? ` (issued ${i.mTLS.lastCertificateRegeneration}, ${i.mTLS.certificateRegenerations} issued so far)` : ""));
  // A live refresh redraws the panel around the same dump element: a fetch in flight still lands in it.
  const pre = (!focus && box.querySelector("pre.dump")) || h("pre", { class: "dump", tabindex: "0" });
  const fetchInto = (what, url) => async () => {
    pre.textContent = `loading ${what}...`;
    try {
      const body = await api(url);
      pre.textContent = typeof body === "string" ? body : JSON.stringify(body, null, 2);
    } catch (e) {
      pre.textContent = `${what}: ${e.message}`;
    }
  };
  const served = session.mode !== "global"; // a global CP serves no proxy: its zone CP has the config
  out.append(h("p", {},
    h("button", { type: "button", onclick: fetchInto("policies", path + "/policies+explained") }, "Policies applied"), " ",
    served ? h("button", { type: "button", onclick: fetchInto("xDS config", path + "/served-xds") }, "xDS config") : "", " ",
    served ? h("button", { type: "button", onclick: fetchInto("config dump", path + "/config-dump") }, "Envoy config dump")
      : `The xDS config and Envoy's config dump are at the control plane of zone ${d.zone} (this page there, or atoll inspect dataplane --config-dump).`),
    pre);
  box.replaceChildren(out);
  if (focus) out.querySelector("h3").focus();
}

function newPolicy(base, mesh, kind) {
  const status = h("p", { role: "status" });
  const template = `type: ${kind.name}\nmesh: ${mesh}\nname: \nspec:\n  targetRef:\n    kind: Mesh\n`;
  const submit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const name = String(f.get("new-name") || "").trim();
    try {
      await api(`${base}/${enc(name)}`, { method: "PUT", headers: { "Content-Type": "application/yaml" }, body: f.get("new-yaml") });
      go("policies", { mesh, kind: kind.name, name });
    } catch (err) {
      status.textContent = "not created: " + err.message;
    }
  };
  return h("form", { class: "detail", id: "new-policy", onsubmit: submit },
    h("h3", {}, `New ${kind.name}`),
    h("label", { for: "new-name" }, "Name "), h("input", { id: "new-name", name: "new-name", required: true, maxlength: 253 }),
    h("label", { for: "new-yaml" }, "YAML (the name in it must match)"),
    h("textarea", { id: "new-yaml", name: "new-yaml", rows: 10, cols: 80, spellcheck: "false" }, template),
    h("p", {}, h("button", { type: "submit" }, "Create")), status);
}

async function policyDetail(base, mesh, kind, name, readOnly) {
  const path = `${base}/${enc(name)}`;
  const [yaml, reach] = await Promise.all([
    api(path, { headers: { Accept: "application/yaml" } }),
    api(`${path}/_resources/dataplanes`),
  ]);
  const out = h("section", { "aria-labelledby": "policy-title", class: "detail", id: "policy-detail" },
    h("h3", { id: "policy-title" }, `${kind.name} ${name}`));
  const rows = reach.items.map((r) => h("tr", { "data-proxy": r.dataplane },
    h("th", { scope: "row" }, r.dataplane), cell("zone", r.zone || "—"),
    cell("inbounds", (r.inbounds || []).join(", ") || "—"), cell("outbounds", (r.outbounds || []).join(", ") || "—")));
  out.append(table(`Selects ${reach.total} proxies (as atoll inspect policy)`, ["Dataplane", "Zone", "Inbounds", "Outbounds"], rows, { id: "reach-table" }));
  const area = h("textarea", { id: "policy-yaml", rows: 16, cols: 80, readonly: !!readOnly, spellcheck: "false" }, yaml);
  out.append(h("label", { for: "policy-yaml" }, "YAML"), area);
  if (!readOnly) {
    const status = h("p", { role: "status" });
    const apply = async () => {
      try {
        await api(path, { method: "PUT", headers: { "Content-Type": "application/yaml" }, body: area.value });
        area.defaultValue = area.value; // applied: live refreshes may replace it again
        status.textContent = "applied";
      } catch (e) {
        status.textContent = "not applied: " + e.message;
      }
    };
    const remove = async () => {
      if (!confirm(`Delete ${kind.name} ${name}?`)) return;
      current = null; // no live refresh of this policy's page from now on: it is going away
      try {
        await api(path, { method: "DELETE" });
        go("policies", { mesh, kind: kind.name });
      } catch (e) {
        status.textContent = "not deleted: " + e.message;
      }
    };
    out.append(h("p", {}, h("button", { type: "button", onclick: apply }, "Apply"), " ",
      h("button", { type: "button", onclick: remove }, "Delete")), status);
  }
  return out;
}
