// The tracer's view: find a person, trace contacts (timeline, table, graph), screen exposure sites, flag one.
import { t, word } from "./i18n.js";
import {
  $, PALETTE, api, drawn, el, errorText, fillTable, forget, localTime, pickerToIso, msToPicker, regionCell,
  rememberVenues, state, svg, venueLabel, venuesText, window2,
} from "./core.js";
import { renderGraph } from "./graph.js";

const trace = { body: null, last: null, toSources: null };

/** ``fn(cases, window, reason)`` is called with the persons a tracer takes from a contacts answer. */
export function onTakeCases(fn) { trace.toSources = fn; }

// --- find a person ------------------------------------------------------------------------------------------

export function lookupBody(query, reason) {
  const digits = query.replace(/[\s-]/g, "");
  return /^\d{17}[\dXx]$/.test(digits) ? { id_number: digits, reason } : { phone: query, reason };
}

async function findPerson(ev) {
  ev.preventDefault();
  const box = $("find-results");
  box.replaceChildren();
  $("trace-error").textContent = "";
  const query = $("find-query").value.trim();
  const reason = $("trace-reason").value.trim();
  if (!query || !reason) { $("trace-error").textContent = t("find.need"); return; }
  try {
    const found = await (await api("/v1/trace/persons/lookup", { method: "POST", json: lookupBody(query, reason) })).json();
    if (!found.matches.length) { box.append(el("span", { class: "note" }, t("find.none"))); return; }
    for (const m of found.matches) {
      box.append(el("button", {
        type: "button", class: "small secondary", "data-person-id": String(m.person_id),
        onclick: () => { $("trace-person").value = String(m.person_id); $("trace-run").click(); },
      }, `${t("find.pick")} ${m.person_id}${m.name ? " " + m.name : ""}`));
    }
    if (found.matches.length === 1) $("trace-person").value = String(found.matches[0].person_id);
  } catch (err) {
    $("trace-error").textContent = errorText(err);
  }
}

// --- contacts, timeline, graph ---------------------------------------------------------------------------

function clearTrace() {
  trace.last = null;
  for (const name of ["visits", "contacts"]) forget(name);
  for (const id of ["visits-table", "contacts-table"]) fillTable($(id), []);
  for (const id of ["timeline-chart", "graph", "contacts-pager"]) $(id).replaceChildren();
  $("contact-details").textContent = "";
  $("trace-summary").textContent = "";
  $("trace-to-sources").hidden = true;
}

async function runTrace(ev) {
  ev.preventDefault();
  $("trace-error").textContent = "";
  clearTrace();  // nothing of an earlier person stays on screen, whatever happens next
  const person = $("trace-person").value.trim();
  try {
    if (!/^\d+$/.test(person)) throw new Error(t("trace.badperson"));
    const [since, until] = window2("trace-since", "trace-until");
    const body = {
      person_id: Number(person), since, until,
      depth: Number($("trace-depth").value),
      min_overlap_minutes: Number($("trace-min").value || 15),
      limit: Number($("trace-limit").value || 1000),
      reason: $("trace-reason").value.trim(),
    };
    $("trace-summary").textContent = t("trace.running");
    const qs = new URLSearchParams({ since: body.since, until: body.until, reason: body.reason });
    const [visits, contacts] = await Promise.all([
      api(`/v1/trace/persons/${person}/visits?${qs}`).then((r) => r.json()),
      fetchContacts(body, 0),
    ]);
    drawn("visits", renderVisits, visits);
    drawn("contacts", renderTrace, contacts);
  } catch (err) {
    clearTrace();
    $("trace-error").textContent = errorText(err);
  }
}

async function fetchContacts(body, offset) {
  const contacts = await (await api("/v1/trace/contacts", { method: "POST", json: { ...body, offset } })).json();
  trace.body = body;
  return contacts;
}

// Both contact lists come a page at a time (the server's default limit), largest overlap first.
function renderTrace(contacts) {
  trace.last = contacts;
  rememberVenues(contacts.venue_names);
  renderContacts(contacts);
  renderGraph($("graph"), contacts);
  renderPager(contacts);
  let summary = t("trace.summary", {
    contacts: contacts.contacts_total, second: contacts.second_degree_total, stays: contacts.index_stays,
    person: contacts.person_id + (contacts.person_name ? ` ${contacts.person_name}` : ""),
  });
  const largest = Math.max(contacts.contacts_total, contacts.second_degree_total);
  if (largest > contacts.limit) {
    summary += t("trace.paged", { from: contacts.offset + 1, to: Math.min(contacts.offset + contacts.limit, largest) });
  }
  $("trace-summary").textContent = summary;
  $("trace-to-sources").hidden = !(contacts.contacts.length || contacts.second_degree.length);
}

function renderPager(data) {
  const box = $("contacts-pager");
  box.replaceChildren();
  const largest = Math.max(data.contacts_total, data.second_degree_total);
  if (largest <= data.limit) return;
  const go = (offset) => fetchContacts(trace.body, offset).then((c) => drawn("contacts", renderTrace, c)).catch((err) => {
    clearTrace();
    $("trace-error").textContent = errorText(err);
  });
  const prev = el("button", { type: "button", class: "small", id: "contacts-prev", onclick: () => go(Math.max(0, data.offset - data.limit)) }, "‹");
  const next = el("button", { type: "button", class: "small", id: "contacts-next", onclick: () => go(data.offset + data.limit) }, "›");
  prev.disabled = data.offset === 0;
  next.disabled = data.offset + data.limit >= largest;
  box.append(prev, " ", next);
}

function renderVisits(data) {
  for (const v of data.visits) if (v.venue_name) state.venueNames.set(v.venue_id, v.venue_name);
  fillTable($("visits-table"), data.visits.map((v) => el("tr", { "data-checkin-id": v.checkin_id },
    el("td", {}, localTime(v.at)), el("td", {}, localTime(v.end_at)), el("td", {}, v.venue_name || ""),
    el("td", {}, v.venue_id), regionCell(v.community), el("td", { "data-status": v.status }, word("status", v.status)),
    el("td", { "data-verdict": v.verdict }, word("verdict", v.verdict)))));
  const box = $("timeline-chart");
  box.replaceChildren();
  if (!data.visits.length) { box.append(el("p", { class: "note" }, t("timeline.none"))); return; }
  box.append(timelineSvg(data.visits));
}

// One lane per venue labelled by its name, zoomed to the stays (not the whole query window), one bar per
// stay: stays that would touch on screen (a scan a minute after the last) go to a row of their own in the
// lane, so no bar hides another and every stay stays countable.
function timelineSvg(visits) {
  const starts = visits.map((v) => Date.parse(v.at)), ends = visits.map((v) => Date.parse(v.end_at));
  let t0 = Math.min(...starts), t1 = Math.max(...ends);
  const pad = Math.max((t1 - t0) * 0.03, 15 * 60000);
  t0 -= pad; t1 += pad;
  const width = Math.max(320, Math.round($("timeline-chart").clientWidth || 1000));
  const left = Math.min(200, Math.round(width * 0.34)), right = 16, barH = 14, gap = 3, top = 8, axis = 34;
  const x = (ms) => left + ((ms - t0) / (t1 - t0)) * (width - left - right);
  const lanes = [];
  for (const v of visits) {
    let lane = lanes.find((l) => l.venue === v.venue_id);
    if (!lane) lanes.push(lane = { venue: v.venue_id, rows: [] });
    const a = x(Date.parse(v.at)), b = Math.max(x(Date.parse(v.end_at)), a + 4);
    let row = lane.rows.findIndex((r) => r.end + 2 <= a);
    if (row < 0) { lane.rows.push({ end: 0, bars: [] }); row = lane.rows.length - 1; }
    lane.rows[row].end = b;
    lane.rows[row].bars.push({ v, a, b });
  }
  let y = top;
  for (const lane of lanes) { lane.y = y; lane.h = Math.max(1, lane.rows.length) * (barH + gap) + 8; y += lane.h; }
  const height = y + axis;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", id: "timeline-svg" });
  lanes.forEach((lane, i) => {
    root.append(svg("rect", { x: left, y: lane.y, width: width - left - right, height: lane.h - 2, fill: i % 2 ? "#f6f8fa" : "#eef2f6" }));
    const name = state.venueNames.get(lane.venue) || String(lane.venue);
    const room = Math.max(6, Math.floor((left - 12) / 12));
    const label = svg("text", { x: left - 8, y: lane.y + Math.min(lane.h / 2 + 4, 18), "text-anchor": "end", class: "lane",
      "data-venue-id": String(lane.venue) }, name.length > room ? name.slice(0, room - 1) + "…" : name);
    label.append(svg("title", {}, `${name} (${lane.venue})`));
    root.append(label);
    lane.rows.forEach((row, r) => {
      for (const { v, a, b } of row.bars) {
        const rect = svg("rect", { x: a, y: lane.y + 4 + r * (barH + gap), width: b - a, height: barH, rx: 2,
          fill: PALETTE[i % PALETTE.length], stroke: "#fff", "stroke-width": 1, "data-checkin-id": v.checkin_id });
        rect.append(svg("title", {}, `${v.venue_name || v.venue_id}: ${localTime(v.at)} – ${localTime(v.end_at)}`));
        root.append(rect);
      }
    });
  });
  const ticks = Math.max(1, Math.min(6, Math.floor((width - left - right) / 110))), axisY = y + 14;
  for (let k = 0; k <= ticks; k++) {
    const ms = t0 + ((t1 - t0) * k) / ticks, px = x(ms);
    root.append(svg("line", { x1: px, y1: top, x2: px, y2: axisY - 10, stroke: "#c8d0d9", "stroke-dasharray": "2 3" }));
    root.append(svg("text", { x: px, y: axisY + 4, "text-anchor": k === 0 ? "start" : k === ticks ? "end" : "middle" },
      localTime(new Date(ms).toISOString()).slice(5)));
  }
  return root;
}

export function phoneButton(personId, boxId, reasonId) {
  return el("button", { class: "small secondary", type: "button", "data-phone-for": String(personId),
    onclick: () => showDetails(personId, boxId, reasonId) }, t("phone"));
}

function contactRow(c, degree) {
  return el("tr", { "data-person-id": String(c.person_id), "data-degree": String(degree) },
    el("td", { class: "person-id" }, c.person_id), el("td", {}, c.name || ""), el("td", {}, degree),
    el("td", {}, (c.overlap_seconds / 60).toFixed(1)), el("td", {}, localTime(c.first_contact_at)),
    el("td", {}, venuesText(c.venue_ids)), el("td", {}, (c.via || []).join(", ")),
    el("td", {}, phoneButton(c.person_id, "contact-details", "trace-reason")),
    el("td", {}, el("input", { type: "checkbox", class: "take-case", value: String(c.person_id),
      "data-name": c.name || "", "aria-label": `${t("trace.pick")} ${c.person_id}` })));
}

function renderContacts(data) {
  const rows = data.contacts.map((c) => contactRow(c, 1)).concat(data.second_degree.map((c) => contactRow(c, 2)));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 9, class: "note" }, t("contacts.none"))));
  fillTable($("contacts-table"), rows);
  $("contact-details").textContent = "";
}

function takeCases() {
  const data = trace.last;
  if (!data || !trace.toSources) return;
  const checked = [...$("contacts-table").querySelectorAll("input.take-case:checked")];
  const picked = checked.length
    ? checked.map((c) => ({ id: Number(c.value), name: c.dataset.name }))
    : data.contacts.map((c) => ({ id: c.person_id, name: c.name || "" }));
  trace.toSources([{ id: data.person_id, name: data.person_name || "" }, ...picked],
    [$("trace-since").value, $("trace-until").value], $("trace-reason").value);
}

export async function showDetails(personId, boxId, reasonId) {
  const reason = $(reasonId).value.trim();
  const box = $(boxId);
  box.textContent = "";
  try {
    const qs = new URLSearchParams({ reason });
    const d = await (await api(`/v1/trace/persons/${personId}/contact-details?${qs}`)).json();
    box.textContent = t("phone.of", { person: d.person_id, name: d.name, phone: d.phone });
  } catch (err) {
    box.textContent = t("phone.err", { person: personId, err: errorText(err) });
  }
}

// --- exposure screening and flagging a site ------------------------------------------------------------

function addSiteRow(venue, sinceMs, untilMs) {
  const now = Date.now();
  const row = el("div", { class: "site-row" },
    el("label", {}, el("span", { "data-i18n": "col.venue_id" }, t("col.venue_id")), el("input", { class: "site-venue", inputMode: "numeric", value: venue ? String(venue) : "" })),
    el("label", {}, el("span", { "data-i18n": "trace.since" }, t("trace.since")), el("input", { class: "site-since", type: "datetime-local", value: msToPicker(sinceMs ?? now - 86400000) })),
    el("label", {}, el("span", { "data-i18n": "trace.until" }, t("trace.until")), el("input", { class: "site-until", type: "datetime-local", value: msToPicker(untilMs ?? now) })),
    el("button", { type: "button", class: "small secondary", "data-i18n": "exposure.remove", onclick: () => row.remove() },
      t("exposure.remove")));
  $("exposure-sites").append(row);
  return row;
}

function exposureBody() {
  const sites = [];
  for (const row of $("exposure-sites").querySelectorAll(".site-row")) {
    const venue = row.querySelector(".site-venue").value.trim();
    if (!venue) continue;
    if (!/^\d+$/.test(venue)) throw new Error(`${t("col.venue_id")}: ${venue}`);
    const since = pickerToIso(row.querySelector(".site-since").value), until = pickerToIso(row.querySelector(".site-until").value);
    if (Date.parse(since) >= Date.parse(until)) throw new Error(t("err.order"));
    sites.push({ venue_id: Number(venue), since, until });
  }
  if (!sites.length) throw new Error(t("exposure.nosite"));
  return { sites, reason: $("exposure-reason").value.trim() };
}

function renderExposures(data) {
  rememberVenues(data.venue_names);
  const rows = data.exposures.map((e) => el("tr", { "data-person-id": String(e.person_id) },
    el("td", {}, e.person_id), el("td", {}, e.name || ""), el("td", {}, localTime(e.first_at)),
    el("td", {}, venuesText(e.venue_ids)), el("td", {}, phoneButton(e.person_id, "exposure-details", "exposure-reason"))));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 5, class: "note" }, t("exposure.none"))));
  fillTable($("exposures-table"), rows);
}

async function runExposures(ev) {
  ev.preventDefault();
  $("exposure-error").textContent = "";
  $("exposure-details").textContent = "";
  forget("exposures");
  fillTable($("exposures-table"), []);
  try {
    const data = await (await api("/v1/trace/exposures", { method: "POST", json: exposureBody() })).json();
    drawn("exposures", renderExposures, data);
  } catch (err) {
    $("exposure-error").textContent = errorText(err);
  }
}

export async function download(path, body, filename, errorBox) {
  $(errorBox).textContent = "";
  try {
    const resp = await api(path, { method: "POST", json: body() });
    const url = URL.createObjectURL(await resp.blob());
    const link = el("a", { href: url, download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    $(errorBox).textContent = errorText(err);
  }
}

/** Flag a venue as an exposure site: the body's answer, or an error thrown in the page's words. */
export async function flag(body) {
  return (await api("/v1/exposure-sites", { method: "POST", json: body })).json();
}

async function flagSite(ev) {
  ev.preventDefault();
  $("flag-error").textContent = "";
  $("flag-result").textContent = "";
  try {
    const venue = $("flag-venue").value.trim();
    if (!/^\d+$/.test(venue)) throw new Error(`${t("col.venue_id")}: ${venue}`);
    const [since, until] = window2("flag-since", "flag-until");
    const body = { venue_id: Number(venue), since, until, level: $("flag-level").value, reason: $("flag-reason").value.trim() };
    const message = $("flag-message").value.trim();
    if (message) body.message = message;
    const site = await flag(body);
    $("flag-result").textContent = t("flag.done", { site: site.site_id, venue: venueLabel(site.venue_id), level: t("level." + (site.level || body.level)) });
  } catch (err) {
    $("flag-error").textContent = errorText(err);
  }
}

export function startTracer() {
  const now = Date.now();
  $("trace-since").value = msToPicker(now - 14 * 86400000);
  $("trace-until").value = msToPicker(now + 3600000);
  $("flag-since").value = msToPicker(now - 86400000);
  $("flag-until").value = msToPicker(now);
  if (!$("exposure-sites").children.length) addSiteRow();
}

export function wireTracer() {
  $("find-form").addEventListener("submit", findPerson);
  $("trace-form").addEventListener("submit", runTrace);
  $("trace-to-sources").addEventListener("click", takeCases);
  $("exposure-form").addEventListener("submit", runExposures);
  $("exposure-add").addEventListener("click", () => addSiteRow());
  $("exposure-csv").addEventListener("click", () => download("/v1/trace/exposures?format=csv", exposureBody, "exposures.csv", "exposure-error"));
  $("flag-form").addEventListener("submit", flagSite);
}
