// venue-checkin console: tracer and analyst views over the tracing API.
// Everything is rendered with textContent / SVG attributes (never innerHTML with data).
"use strict";

const KEY_STORE = "checkin.console.key";
const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f6feb", "#d97706", "#059669", "#b42318", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f",
  "#92400e", "#475569"];
const state = { key: "", who: null, alertsAbort: null, lastTrace: null, traceBody: null, lastEventId: "" };

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "onclick") node.addEventListener("click", v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function localTime(iso) {
  if (!iso) return "";
  const tz = (state.who && state.who.tz) || "UTC";
  try {
    return new Intl.DateTimeFormat("sv-SE", {
      timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    }).format(new Date(iso));
  } catch (e) {
    return iso;
  }
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  opts.headers = Object.assign({ Authorization: "Bearer " + state.key }, opts.headers);
  if (opts.json !== undefined) {
    opts.body = JSON.stringify(opts.json);
    opts.headers["Content-Type"] = "application/json";
    delete opts.json;
  }
  const resp = await fetch(path, opts);
  if (!resp.ok) {
    let detail = resp.status + " " + resp.statusText;
    try { const body = await resp.json(); detail = body.detail || detail; } catch (e) { /* not JSON */ }
    throw new ApiError(resp.status, detail);
  }
  return resp;
}

function fillTable(table, rows) {
  const body = table.querySelector("tbody");
  body.replaceChildren(...rows);
}

function isoMinus(days) {
  return new Date(Date.now() - days * 86400000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

// --- sign in ------------------------------------------------------------------------------------

async function signIn(key) {
  state.key = key;
  const resp = await api("/console/whoami");
  state.who = await resp.json();
  sessionStorage.setItem(KEY_STORE, key);
  $("login-view").hidden = true;
  $("tabs").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${state.who.key_id} (${state.who.role}${state.who.scope ? ", scope " + state.who.scope : ""})`;
  showView(state.who.role === "analyst" ? "analyst" : "tracer");
}

function signOut() {
  sessionStorage.removeItem(KEY_STORE);
  if (state.alertsAbort) state.alertsAbort.abort();
  location.reload();
}

function showView(name) {
  for (const tab of document.querySelectorAll("nav .tab")) tab.classList.toggle("active", tab.dataset.view === name);
  $("tracer-view").hidden = name !== "tracer";
  $("analyst-view").hidden = name !== "analyst";
  if (name === "analyst") {
    loadCharts();
    startAlerts();
  }
}

// --- tracer: contacts, timeline, graph ------------------------------------------------------------

async function runTrace(ev) {
  ev.preventDefault();
  $("trace-error").textContent = "";
  const person = $("trace-person").value.trim();
  const body = {
    person_id: Number(person),
    since: $("trace-since").value.trim(),
    until: $("trace-until").value.trim(),
    depth: Number($("trace-depth").value),
    min_overlap_minutes: Number($("trace-min").value || 15),
    limit: Number($("trace-limit").value || 1000),
    reason: $("trace-reason").value.trim(),
  };
  if (!/^\d+$/.test(person)) { $("trace-error").textContent = "person id must be a number"; return; }
  $("trace-summary").textContent = "Tracing…";
  try {
    const qs = new URLSearchParams({ since: body.since, until: body.until, reason: body.reason });
    const [visits] = await Promise.all([
      api(`/v1/trace/persons/${person}/visits?${qs}`).then((r) => r.json()),
      showContactsPage(body, 0),
    ]);
    renderVisits(visits);
  } catch (err) {
    $("trace-summary").textContent = "";
    $("trace-error").textContent = err.message;
  }
}

// Both contact lists come a page at a time (the server's default limit), largest overlap first.
async function showContactsPage(body, offset) {
  const contacts = await (await api("/v1/trace/contacts", { method: "POST", json: { ...body, offset } })).json();
  state.traceBody = body;
  state.lastTrace = contacts;
  renderContacts(contacts);
  renderGraph(contacts);
  renderPager(contacts);
  let summary =
    `${contacts.contacts_total} contact(s), ${contacts.second_degree_total} second-degree, ` +
    `from ${contacts.index_stays} stay(s) of person ${contacts.person_id}`;
  const largest = Math.max(contacts.contacts_total, contacts.second_degree_total);
  if (largest > contacts.limit) {
    summary += `; showing rows ${contacts.offset + 1}–${Math.min(contacts.offset + contacts.limit, largest)} of each list`;
  }
  $("trace-summary").textContent = summary;
}

function renderPager(data) {
  const box = $("contacts-pager");
  box.replaceChildren();
  const largest = Math.max(data.contacts_total, data.second_degree_total);
  if (largest <= data.limit) return;
  const go = (offset) => showContactsPage(state.traceBody, offset).catch((err) => {
    $("trace-error").textContent = err.message;
  });
  const prev = el("button", { type: "button", class: "small", id: "contacts-prev", onclick: () => go(Math.max(0, data.offset - data.limit)) }, "Previous");
  const next = el("button", { type: "button", class: "small", id: "contacts-next", onclick: () => go(data.offset + data.limit) }, "Next");
  prev.disabled = data.offset === 0;
  next.disabled = data.offset + data.limit >= largest;
  box.append(prev, next);
}

function renderVisits(data) {
  fillTable($("visits-table"), data.visits.map((v) => el("tr", { "data-checkin-id": v.checkin_id },
    el("td", {}, localTime(v.at)), el("td", {}, localTime(v.end_at)), el("td", {}, v.venue_id),
    el("td", {}, v.venue_name), el("td", {}, v.community), el("td", {}, v.status), el("td", {}, v.verdict))));
  const box = $("timeline-chart");
  box.replaceChildren();
  if (!data.visits.length) { box.append(el("p", { class: "note" }, "No stays in this window.")); return; }
  const t0 = Date.parse(data.since), t1 = Date.parse(data.until);
  const width = 1000, rowH = 16;
  const venues = [...new Set(data.visits.map((v) => v.venue_id))];
  const root = svg("svg", { viewBox: `0 0 ${width} ${venues.length * rowH + 24}`, width: "100%", role: "img" });
  const x = (t) => 90 + ((t - t0) / (t1 - t0)) * (width - 100);
  venues.forEach((venue, i) => root.append(svg("text", { x: 2, y: i * rowH + 12 }, `venue ${venue}`)));
  for (const v of data.visits) {
    const i = venues.indexOf(v.venue_id);
    const a = x(Date.parse(v.at)), b = Math.max(x(Date.parse(v.end_at)), a + 2);
    const rect = svg("rect", { x: a, y: i * rowH + 3, width: b - a, height: rowH - 6, fill: PALETTE[i % PALETTE.length] });
    rect.append(svg("title", {}, `${v.venue_name || v.venue_id}: ${localTime(v.at)} – ${localTime(v.end_at)}`));
    root.append(rect);
  }
  root.append(svg("text", { x: 90, y: venues.length * rowH + 18 }, localTime(data.since)));
  root.append(svg("text", { x: width - 10, y: venues.length * rowH + 18, "text-anchor": "end" }, localTime(data.until)));
  box.append(root);
}

function contactRow(c, degree) {
  const details = el("button", { class: "small", type: "button", onclick: () => showDetails(c.person_id) }, "phone");
  return el("tr", { "data-person-id": String(c.person_id), "data-degree": String(degree) },
    el("td", { class: "person-id" }, c.person_id), el("td", {}, degree),
    el("td", {}, (c.overlap_seconds / 60).toFixed(1)), el("td", {}, localTime(c.first_contact_at)),
    el("td", {}, c.venue_ids.join(", ")), el("td", {}, (c.via || []).join(", ")), el("td", {}, details));
}

function renderContacts(data) {
  const rows = data.contacts.map((c) => contactRow(c, 1)).concat(data.second_degree.map((c) => contactRow(c, 2)));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 7, class: "note" }, "No contacts.")));
  fillTable($("contacts-table"), rows);
  $("contact-details").textContent = "";
}

async function showDetails(personId) {
  const reason = $("trace-reason").value.trim();
  const box = $("contact-details");
  try {
    const qs = new URLSearchParams({ reason });
    const d = await (await api(`/v1/trace/persons/${personId}/contact-details?${qs}`)).json();
    box.textContent = `Person ${d.person_id}: ${d.name}, ${d.phone}`;
  } catch (err) {
    box.textContent = `Contact details of ${personId}: ${err.message}`;
  }
}

function renderGraph(data) {
  const box = $("graph");
  box.replaceChildren();
  const size = 520, cx = size / 2, cy = size / 2;
  const root = svg("svg", { viewBox: `0 0 ${size} ${size}`, width: "100%", height: size, role: "img" });
  const pos = new Map();
  pos.set(data.person_id, [cx, cy]);
  const ring = (list, radius) => list.forEach((c, i) => {
    const angle = (2 * Math.PI * i) / Math.max(list.length, 1) - Math.PI / 2;
    pos.set(c.person_id, [cx + radius * Math.cos(angle), cy + radius * Math.sin(angle)]);
  });
  const first = data.contacts.slice(0, 60), second = data.second_degree.slice(0, 120);
  ring(first, 120);
  ring(second, 230);
  const edges = svg("g", { stroke: "#9aa4af" }), nodes = svg("g", {});
  const edge = (a, b, w) => {
    const p = pos.get(a), q = pos.get(b);
    if (p && q) edges.append(svg("line", { x1: p[0], y1: p[1], x2: q[0], y2: q[1], "stroke-width": w }));
  };
  for (const c of first) edge(data.person_id, c.person_id, 1 + Math.min(4, c.overlap_seconds / 3600));
  for (const c of second) for (const v of c.via) edge(v, c.person_id, 1);
  const node = (id, r, fill) => {
    const [x, y] = pos.get(id);
    const g = svg("g", { "data-person-id": String(id) });
    g.append(svg("circle", { cx: x, cy: y, r, fill }), svg("text", { x, y: y - r - 2, "text-anchor": "middle" }, id));
    nodes.append(g);
  };
  node(data.person_id, 12, "#b42318");
  first.forEach((c) => node(c.person_id, 8, "#d97706"));
  second.forEach((c) => node(c.person_id, 5, "#1f6feb"));
  root.append(edges, nodes);
  box.append(root);
  const hidden = data.contacts_total - first.length + data.second_degree_total - second.length;
  if (hidden > 0) box.append(el("p", { class: "note" }, `${hidden} more contact(s) not drawn; the table lists them a page at a time.`));
}

// --- tracer: exposure screening -----------------------------------------------------------------------

function exposureBody() {
  const sites = [];
  const lines = $("exposure-sites").value.split("\n").map((l) => l.trim()).filter(Boolean);
  for (const [n, line] of lines.entries()) {
    const parts = line.split(/[,\s]+/).filter(Boolean);
    if (parts.length !== 3 || !/^\d+$/.test(parts[0])) throw new Error(`line ${n + 1}: expected venue_id, since, until`);
    sites.push({ venue_id: Number(parts[0]), since: parts[1], until: parts[2] });
  }
  return { sites, reason: $("exposure-reason").value.trim() };
}

async function runExposures(ev) {
  ev.preventDefault();
  $("exposure-error").textContent = "";
  try {
    const data = await (await api("/v1/trace/exposures", { method: "POST", json: exposureBody() })).json();
    const rows = data.exposures.map((e) => el("tr", { "data-person-id": String(e.person_id) },
      el("td", {}, e.person_id), el("td", {}, localTime(e.first_at)), el("td", {}, e.venue_ids.join(", "))));
    if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 3, class: "note" }, "Nobody exposed.")));
    fillTable($("exposures-table"), rows);
  } catch (err) {
    $("exposure-error").textContent = err.message;
  }
}

async function downloadCsv() {
  $("exposure-error").textContent = "";
  try {
    const resp = await api("/v1/trace/exposures?format=csv", { method: "POST", json: exposureBody() });
    const url = URL.createObjectURL(await resp.blob());
    const link = el("a", { href: url, download: "exposures.csv" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    $("exposure-error").textContent = err.message;
  }
}

// --- analyst: alerts (SSE over fetch, so the key travels in a header) and charts -----------------------

function alertRow(a) {
  return el("tr", { "data-alert-id": a.alert_id || "" }, el("td", {}, localTime(a.at)), el("td", {}, a.kind),
    el("td", { class: "sev-" + a.severity }, a.severity), el("td", {}, a.person_id ?? ""),
    el("td", {}, a.venue_id), el("td", {}, a.district), el("td", {}, a.community));
}

function addAlert(a) {
  const body = $("alerts-table").querySelector("tbody");
  if (a.alert_id && body.querySelector(`tr[data-alert-id="${CSS.escape(a.alert_id)}"]`)) return;
  body.prepend(alertRow(a));
  while (body.children.length > 500) body.lastChild.remove();
}

async function startAlerts() {
  if (state.alertsAbort) return;
  const status = $("alerts-status");
  state.alertsAbort = new AbortController();
  try {
    const recent = await (await api("/v1/alerts?limit=100")).json();
    const list = Array.isArray(recent) ? recent : recent.alerts || recent.items || [];
    for (const a of list.slice().reverse()) addAlert(a);
  } catch (err) {
    status.textContent = `History unavailable: ${err.message}`;
  }
  for (let attempt = 0; state.alertsAbort && !state.alertsAbort.signal.aborted; attempt++) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;  // resume without gaps
      const resp = await api("/v1/alerts/stream", { signal: state.alertsAbort.signal, headers });
      status.textContent = "Live.";
      attempt = 0;
      await readEvents(resp.body.getReader(), addAlert);
    } catch (err) {
      if (state.alertsAbort.signal.aborted) return;
      status.textContent = `Live feed unavailable (${err.message}); retrying…`;
      if (err.status === 401 || err.status === 403 || err.status === 404) return;
    }
    await new Promise((r) => setTimeout(r, Math.min(30000, 1000 * 2 ** attempt)));
  }
}

async function readEvents(reader, onEvent) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const id = block.split("\n").find((l) => l.startsWith("id:"));
      if (id) state.lastEventId = id.slice(3).trim();
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      try { onEvent(JSON.parse(data)); } catch (e) { /* keep-alive or non-JSON event */ }
    }
  }
}

async function loadCharts() {
  $("charts-error").textContent = "";
  try {
    const [hours, districts] = await Promise.all([
      api("/v1/stats/scans-per-hour").then((r) => r.json()),
      api("/v1/stats/districts").then((r) => r.json()),
    ]);
    renderHourChart(hours);
    fillTable($("districts-table"), districts.rows.map((d) => el("tr", { "data-district": d.district },
      el("td", {}, d.district), el("td", {}, d.scans), el("td", {}, d.persons))));
  } catch (err) {
    $("charts-error").textContent = err.message;
  }
}

function renderHourChart(data) {
  const box = $("hour-chart");
  box.replaceChildren();
  const t0 = Date.parse(data.since), t1 = Date.parse(data.until);
  const hours = [];
  for (let t = Math.floor(t0 / 3600000) * 3600000; t < t1; t += 3600000) hours.push(t);
  const colour = new Map(data.districts.map((d, i) => [d, PALETTE[i % PALETTE.length]]));
  const totals = new Map();
  for (const r of data.rows) totals.set(Date.parse(r.hour), (totals.get(Date.parse(r.hour)) || 0) + r.scans);
  const max = Math.max(1, ...totals.values());
  const width = 1000, height = 240, left = 50, bottom = 20;
  const bw = (width - left) / Math.max(hours.length, 1);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", id: "hour-chart-svg" });
  root.append(svg("text", { x: 0, y: 12 }, max), svg("text", { x: 0, y: height - bottom }, 0));
  const stack = new Map();
  for (const r of data.rows) {
    const t = Date.parse(r.hour), i = hours.indexOf(t);
    if (i < 0) continue;
    const below = stack.get(t) || 0;
    const h = (r.scans / max) * (height - bottom - 10);
    const rect = svg("rect", { x: left + i * bw + 1, y: height - bottom - below - h, width: Math.max(bw - 2, 1), height: h,
      fill: colour.get(r.district), "data-district": r.district });
    rect.append(svg("title", {}, `${localTime(r.hour)} district ${r.district}: ${r.scans}`));
    root.append(rect);
    stack.set(t, below + h);
  }
  hours.forEach((t, i) => {
    if (i % 3 === 0) root.append(svg("text", { x: left + i * bw, y: height - 4 }, localTime(new Date(t).toISOString()).slice(11)));
  });
  box.append(root);
  $("legend").replaceChildren(...data.districts.map((d) => {
    const swatch = el("i", {});
    swatch.style.background = colour.get(d);
    return el("span", {}, swatch, d);
  }));
}

// --- wiring ---------------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("trace-since").value = isoMinus(14);
  $("trace-until").value = isoMinus(-1 / 24);
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      await signIn($("api-key").value.trim());
    } catch (err) {
      state.key = "";
      $("login-error").textContent = err.status === 401 ? "Unknown or revoked key." : err.message;
    }
  });
  $("logout").addEventListener("click", signOut);
  for (const tab of document.querySelectorAll("nav .tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
  $("trace-form").addEventListener("submit", runTrace);
  $("exposure-form").addEventListener("submit", runExposures);
  $("exposure-csv").addEventListener("click", downloadCsv);
  $("charts-refresh").addEventListener("click", loadCharts);
  const saved = sessionStorage.getItem(KEY_STORE);
  if (saved) signIn(saved).catch(() => sessionStorage.removeItem(KEY_STORE));
});
