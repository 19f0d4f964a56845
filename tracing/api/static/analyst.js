// The analyst's view: the queue of the key's level (ack, resolve with a note), live alerts (SSE over fetch,
// so the key travels in a header) and scans per hour by district. Rows are drawn from the data they keep,
// so a change of language redraws them in the new one.
import { duration, t, word } from "./i18n.js";
import {
  $, PALETTE, ApiError, api, drawn, el, errorText, fillTable, localTime, personText, regionCell, regionName,
  rememberVenues, state, svg, venueLabel,
} from "./core.js";

const OUTCOMES = ["handled", "isolated", "tested", "referred", "false_alarm", "duplicate"];
const live = { abort: null, lastEventId: "", alerts: [], stopped: "" };

// --- the queue of a level ----------------------------------------------------------------------------------

export async function loadQueue(ev) {
  if (ev) ev.preventDefault();
  $("queue-error").textContent = "";
  const level = $("queue-level").value, which = $("queue-state").value;
  try {
    const qs = new URLSearchParams({ level, state: which });
    const q = await (await api(`/v1/alerts/queue?${qs}`)).json();
    for (const item of q.alerts) if (item.venue_name) state.venueNames.set(item.alert.venue_id, item.venue_name);
    drawn("queue", renderQueue, q);
  } catch (err) {
    fillTable($("queue-table"), []);
    $("queue-summary").textContent = "";
    $("queue-error").textContent = errorText(err);
  }
}

function renderQueue(q) {
  const city = q.level === "city";  // the last level: nothing is overdue for a level above, alerts just wait
  const head = $("queue-due-th");
  head.dataset.i18n = city ? "col.waiting" : "col.due";
  head.textContent = t(head.dataset.i18n);
  const now = Date.now();
  const rows = q.alerts.map((item) => queueRow(item, city, now));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 9, class: "note" }, t("queue.empty"))));
  fillTable($("queue-table"), rows);
  const waited = q.alerts.map((i) => (now - Date.parse(i.waiting_since || i.alert.at)) / 1000);
  $("queue-summary").textContent = city
    ? t("queue.summary.city", { n: q.count, longest: waited.length ? duration(Math.max(...waited)) : "–" })
    : t("queue.summary", {
      n: q.count, level: t("lvl." + q.level), overdue: q.alerts.filter((i) => i.overdue).length,
      minutes: Math.round(q.escalation_s / 6) / 10,
    });
  fillTable($("acktime-table"), q.ack_times.map((a) => el("tr", { "data-level": a.level },
    el("td", {}, t("lvl." + a.level)), el("td", {}, a.acked),
    el("td", {}, a.acked ? duration(a.median_s) : "–"), el("td", {}, a.acked ? duration(a.p90_s) : "–"))));
}

function queueRow(item, city, now) {
  const a = item.alert;
  const actions = el("div", { class: "disposition" });
  if (!a.acked) {
    actions.append(el("button", { type: "button", class: "small", "data-action": "ack", onclick: () => ackAlert(a.alert_id) }, t("ack")));
  }
  const outcome = el("select", { class: "outcome" });
  for (const o of OUTCOMES) outcome.append(el("option", { value: o }, t("out." + o)));
  const note = el("input", { class: "note-input", maxLength: 500, placeholder: t("queue.note"), "aria-label": t("queue.note") });
  actions.append(outcome, note, el("button", { type: "button", class: "small secondary", "data-action": "resolve",
    onclick: () => resolveAlert(a.alert_id, outcome.value, note.value.trim()) }, t("resolve")));
  let due;
  if (city) {
    due = el("td", { class: "waiting" }, duration((now - Date.parse(item.waiting_since || a.at)) / 1000));
  } else {
    due = el("td", {}, localTime(item.due_at));
    if (item.overdue) due.append(el("span", { class: "badge" }, t("queue.overdue")));
  }
  return el("tr", { "data-alert-id": a.alert_id, class: item.overdue && !city ? "overdue" : "" },
    el("td", {}, localTime(a.at)), el("td", { "data-kind": a.kind }, word("kind", a.kind)),
    el("td", { class: "sev-" + a.severity }, word("sev", a.severity)),
    el("td", { class: "person" }, a.person_id == null ? "" : personText(a.person_id, item.person_name)),
    el("td", {}, venueLabel(a.venue_id)), regionCell(a.community), el("td", {}, t("lvl." + a.level)), due,
    el("td", {}, actions));
}

async function ackAlert(id) {
  $("queue-error").textContent = "";
  try {
    await api(`/v1/alerts/${encodeURIComponent(id)}/ack`, { method: "POST" });
    await loadQueue();
  } catch (err) {
    $("queue-error").textContent = errorText(err);
  }
}

async function resolveAlert(id, outcome, note) {
  $("queue-error").textContent = "";
  try {
    await api(`/v1/alerts/${encodeURIComponent(id)}/resolve`, { method: "POST", json: note ? { outcome, note } : { outcome } });
    await loadQueue();
  } catch (err) {
    $("queue-error").textContent = errorText(err);
  }
}

// --- live alerts -------------------------------------------------------------------------------------------

function alertRow(a) {
  return el("tr", { "data-alert-id": a.alert_id || "", "data-level": a.level || "community" },
    el("td", {}, localTime(a.at)), el("td", { "data-kind": a.kind }, word("kind", a.kind)),
    el("td", { class: "sev-" + a.severity }, word("sev", a.severity)), el("td", {}, a.person_id ?? ""),
    el("td", { class: "venue" }, venueLabel(a.venue_id)), regionCell(a.district), regionCell(a.community),
    el("td", { class: "level" }, t("lvl." + (a.level || "community"))));
}

function renderAlerts() {
  fillTable($("alerts-table"), live.alerts.map(alertRow));
}

function onAlertEvent(event, a) {
  if (a.venue_name) state.venueNames.set(a.venue_id, a.venue_name);
  const at = a.alert_id ? live.alerts.findIndex((x) => x.alert_id === a.alert_id) : -1;
  if (at >= 0) {
    if (event !== "alert") live.alerts[at] = a;  // escalated / acked / resolved: new state
  } else {
    live.alerts.unshift(a);
    live.alerts.length = Math.min(live.alerts.length, 500);
  }
  drawn("alerts", renderAlerts);
  if (event === "escalated" && state.view === "analyst") loadQueue();
}

function showStatus() {
  $("alerts-status").textContent = live.stopped ? t("alerts.stopped", { err: live.stopped }) : t("alerts.live");
}

// A key that may not read alerts (401, 403) or a feed that is not there (404) stops the feed for good
// and says so; anything else is retried with a growing pause.
function final(err) {
  return err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 404);
}

export async function startAlerts() {
  if (live.abort) return;
  const status = $("alerts-status");
  live.abort = new AbortController();
  try {
    const recent = await (await api("/v1/alerts?limit=100")).json();
    rememberVenues(recent.venue_names);
    for (const a of recent.alerts.slice().reverse()) onAlertEvent("alert", a);
  } catch (err) {
    if (final(err)) { live.stopped = errorText(err); drawn("alerts-status", showStatus); return; }
    status.textContent = t("alerts.history", { err: errorText(err) });
  }
  for (let attempt = 0; live.abort && !live.abort.signal.aborted; attempt++) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (live.lastEventId) headers["Last-Event-ID"] = live.lastEventId;  // resume without gaps
      const resp = await api("/v1/alerts/stream", { signal: live.abort.signal, headers });
      drawn("alerts-status", showStatus);
      attempt = 0;
      await readEvents(resp.body.getReader(), onAlertEvent);
    } catch (err) {
      if (live.abort.signal.aborted) return;
      if (final(err)) { live.stopped = errorText(err); drawn("alerts-status", showStatus); return; }
      status.textContent = t("alerts.retry", { err: errorText(err) });
    }
    await new Promise((r) => setTimeout(r, Math.min(30000, 1000 * 2 ** attempt)));
  }
}

export function stopAlerts() {
  if (live.abort) live.abort.abort();
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
      const lines = block.split("\n");
      const id = lines.find((l) => l.startsWith("id:"));
      if (id) live.lastEventId = id.slice(3).trim();
      const name = (lines.find((l) => l.startsWith("event:")) || "event: alert").slice(6).trim();
      const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data || name === "reset") continue;
      try { onEvent(name, JSON.parse(data)); } catch (e) { /* keep-alive or non-JSON event */ }
    }
  }
}

// --- scans per hour by district ----------------------------------------------------------------------------

export async function loadCharts() {
  $("charts-error").textContent = "";
  try {
    const [hours, districts] = await Promise.all([
      api("/v1/stats/scans-per-hour").then((r) => r.json()),
      api("/v1/stats/districts").then((r) => r.json()),
    ]);
    drawn("charts", renderCharts, { hours, districts });
  } catch (err) {
    $("charts-error").textContent = errorText(err);
  }
}

function renderCharts({ hours, districts }) {
  renderHourChart(hours);
  fillTable($("districts-table"), districts.rows.map((d) => el("tr", { "data-district": d.district },
    regionCell(d.district), el("td", {}, d.scans), el("td", {}, d.persons))));
}

function renderHourChart(data) {
  const box = $("hour-chart");
  box.replaceChildren();
  const t0 = Date.parse(data.since), t1 = Date.parse(data.until);
  const hours = [];
  for (let h = Math.floor(t0 / 3600000) * 3600000; h < t1; h += 3600000) hours.push(h);
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
    const h = Date.parse(r.hour), i = hours.indexOf(h);
    if (i < 0) continue;
    const below = stack.get(h) || 0;
    const bar = (r.scans / max) * (height - bottom - 10);
    const rect = svg("rect", { x: left + i * bw + 1, y: height - bottom - below - bar, width: Math.max(bw - 2, 1), height: bar,
      fill: colour.get(r.district), "data-district": r.district });
    rect.append(svg("title", {}, `${localTime(r.hour)} ${regionName(r.district)} (${r.district}): ${r.scans}`));
    root.append(rect);
    stack.set(h, below + bar);
  }
  hours.forEach((h, i) => {
    if (i % 3 === 0) root.append(svg("text", { x: left + i * bw, y: height - 4 }, localTime(new Date(h).toISOString()).slice(11)));
  });
  box.append(root);
  $("legend").replaceChildren(...data.districts.map((d) => {
    const swatch = el("i", {});
    swatch.style.background = colour.get(d);
    return el("span", { title: d, "data-code": d }, swatch, regionName(d));
  }));
}

export function wireAnalyst() {
  $("queue-form").addEventListener("submit", loadQueue);
  $("queue-level").addEventListener("change", () => loadQueue());
  $("queue-state").addEventListener("change", () => loadQueue());
  $("charts-refresh").addEventListener("click", loadCharts);
}
