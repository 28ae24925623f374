// Atoll's GUI: plain JavaScript, no build step. Every number comes from the control plane's API:
// the REST API itself, or the GUI's views under /gui/api (computed by the same functions).
// The admin token (if this browser is not on the CP's host) lives in sessionStorage and goes in the
// Authorization header of fetch calls; never in a URL. Pages follow /gui/api/events (server-sent
// events, read through fetch so the header can be sent) and reload their data when something changes.
"use strict";

const TOKEN_KEY = "atoll.adminToken";
const PAGES = ["zones", "meshes", "proxies", "policies", "rollout"];
let session = null;
let current = null; // {page, params, load}
let refreshTimer = null;
let lastRefresh = 0;
let eventsAbort = null;
let selected = null; // the proxy whose detail is open: {mesh, name}

// --- small helpers -------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function cell(field, value, extra) {
  return h("td", Object.assign({ "data-field": field }, extra || {}), value);
}

function table(caption, headers, rows, attrs) {
  return h(
    "table",
    attrs || {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length }, "none")))
  );
}

function badge(text, kind) {
  return h("span", { class: "badge " + kind }, text);
}

function when(iso) {
  if (!iso) return "—";
  return h("time", { datetime: iso }, iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z"));
}

function params() {
  const [, page, query] = location.hash.match(/^#\/([a-z]*)\??(.*)$/) || [null, "", ""];
  return { page: PAGES.includes(page) ? page : "zones", params: new URLSearchParams(query) };
}

function go(page, values) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) if (v) q.set(k, v);
  const hash = "#/" + page + (q.toString() ? "?" + q : "");
  if (location.hash === hash) render();
  else location.hash = hash;
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.details || body.title)) || "HTTP " + status);
    this.status = status;
  }
}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) opts.headers["Authorization"] = "Bearer " + token;
  if (!opts.headers["Accept"]) opts.headers["Accept"] = "application/json";
  const resp = await fetch(path, opts);
  const text = await resp.text();
  let body = text;
  if ((resp.headers.get("content-type") || "").includes("json")) body = text ? JSON.parse(text) : null;
  if (resp.status === 401 || resp.status === 403) {
    if (path.startsWith("/gui/api")) showLogin(body && body.details);
    throw new ApiError(resp.status, body);
  }
  if (!resp.ok) throw new ApiError(resp.status, typeof body === "object" ? body : { details: text });
  return body;
}

const enc = encodeURIComponent;

// --- login and session ---------------------------------------------------------------------------

function showLogin(message) {
  stopEvents();
  session = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("page").hidden = true;
  document.getElementById("page").replaceChildren();
  document.getElementById("logout").hidden = !sessionStorage.getItem(TOKEN_KEY);
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("cp-info").textContent = "";
  document.getElementById("token").focus();
}

async function start() {
  try {
    session = await api("/gui/api/session");
  } catch (e) {
    if (!(e instanceof ApiError && (e.status === 401 || e.status === 403))) showError(e);
    return;
  }
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("page").hidden = false;
  document.getElementById("logout").hidden = !sessionStorage.getItem(TOKEN_KEY);
  const where = session.zone ? ` of zone ${session.zone}` : "";
  document.getElementById("cp-info").textContent = `${session.mode} control plane${where}, version ${session.version}`;
  startEvents();
  render();
}

function showError(e) {
  const page = document.getElementById("page");
  page.hidden = false;
  page.replaceChildren(h("p", { role: "alert", class: "error" }, String(e.message || e)));
}

// --- live updates ----------------------------------------------------------------------------------

function setLive(state) {
  const el = document.getElementById("live");
  el.dataset.state = state;
  el.textContent = "live updates: " + state;
}

function stopEvents() {
  if (eventsAbort) eventsAbort.abort();
  eventsAbort = null;
  setLive("off");
}

async function startEvents() {
  stopEvents();
  const abort = new AbortController();
  eventsAbort = abort;
  while (!abort.signal.aborted && session) {
    try {
      const headers = { Accept: "text/event-stream" };
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token) headers["Authorization"] = "Bearer " + token;
      const resp = await fetch("/gui/api/events", { headers, signal: abort.signal });
      if (!resp.ok) throw new Error("events: HTTP " + resp.status);
      setLive("on");
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let i;
        while ((i = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          // on connecting too: a change made after the page loaded and before the stream followed
          if (message.startsWith("data:") || message.startsWith(": connected")) scheduleRefresh();
        }
      }
    } catch (e) {
      if (abort.signal.aborted) return;
    }
    setLive("reconnecting");
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function scheduleRefresh() {
  if (refreshTimer) return;
  const wait = Math.max(0, 500 - (Date.now() - lastRefresh));
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    await refresh();
  }, wait);
}

function editing(region) {
  // Someone is typing in this region (focus, or text changed and not applied): do not replace it.
  const fields = region ? region.querySelectorAll("input:not([type=hidden]), textarea") : [];
  return [...fields].some((f) => f === document.activeElement || (!f.readOnly && f.value !== f.defaultValue));
}

async function refresh() {
  if (!current || !current.ready || !session) return; // not drawn yet: render() refreshes when it is
  if (editing(document.getElementById("data"))) return;
  lastRefresh = Date.now();
  const target = current;
  let content;
  try {
    content = await target.load();
  } catch (e) {
    content = h("p", { role: "alert", class: "error" }, e.message);
  }
  const region = document.getElementById("data");
  if (current === target && region) region.replaceChildren(content);
  document.getElementById("page").dataset.loadedAt = String(Date.now());
}

// --- routing --------------------------------------------------------------------------------------

async function render() {
  if (!session) return;
  const { page, params: p } = params();
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const def = pages[page];
  const root = document.getElementById("page");
  const target = { page, ready: false, load: () => def.load(p) };
  current = target;
  let controls = null;
  try {
    controls = await def.setup(p);
  } catch (e) {
    if (current === target) showError(e);
    return;
  }
  if (current !== target) return;
  document.title = `${def.title} · Atoll`;
  root.dataset.page = page;
  selected = null;
  root.replaceChildren(h("h2", { id: "page-title" }, def.title), controls || "", h("div", { id: "data" }), h("div", { id: "detail" }));
  target.ready = true;
  await refresh();
}

window.addEventListener("hashchange", render);
document.getElementById("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  start();
});
document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});
start();
