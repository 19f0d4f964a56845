// The 溯源 view (source tracing): a tracer names the cases of a cluster (by person id, ID number or phone,
// or from a contacts answer) and sees the venues they had in common on a timeline (one lane per venue,
// one mark per case) and the persons who met several of them; a common venue is flagged as an exposure
// site in one click, its window prefilled from the cases' stays there.
import { t } from "./i18n.js";
import {
  $, PALETTE, api, drawn, el, errorText, fillTable, forget, localTime, msToPicker, personText,
  rememberVenues, state, svg, venueLabel, venuesText, window2,
} from "./core.js";
import { download, flag, lookupBody, phoneButton } from "./tracer.js";

const cases = new Map();  // person id -> masked name ("" when unknown)
const view = { last: null, body: null, flagged: new Map() };

function renderCases() {
  drawn("source-cases", drawCases);
}

function drawCases() {
  const box = $("sources-cases");
  box.replaceChildren(...[...cases].map(([id, name]) => el("span", { class: "chip", "data-case": String(id) },
    personText(id, name), el("button", { type: "button", class: "chip-x", title: t("sources.remove"),
      "aria-label": `${t("sources.remove")} ${id}`, onclick: () => { cases.delete(id); renderCases(); } }, "×"))));
  $("sources-count").textContent = cases.size ? t("sources.cases", { n: cases.size }) : t("sources.nocases");
}

/** Add persons as cases (from a contacts answer or a lookup), optionally with the trace's window and reason. */
export function addCases(persons, window, reason) {
  for (const p of persons) if (!cases.has(p.id) || p.name) cases.set(p.id, p.name || cases.get(p.id) || "");
  if (window && window[0] && window[1]) { $("sources-since").value = window[0]; $("sources-until").value = window[1]; }
  if (reason && !$("sources-reason").value) $("sources-reason").value = reason;
  renderCases();
}

async function addCase(ev) {
  ev.preventDefault();
  $("sources-error").textContent = "";
  const query = $("sources-query").value.trim();
  if (!query) return;
  const digits = query.replace(/[\s-]/g, "");
  try {
    if (/^\d{1,10}$/.test(digits)) {
      addCases([{ id: Number(digits), name: "" }]);
    } else {
      const reason = $("sources-reason").value.trim();
      if (!reason) throw new Error(t("find.need"));
      const found = await (await api("/v1/trace/persons/lookup", { method: "POST", json: lookupBody(query, reason) })).json();
      if (!found.matches.length) throw new Error(t("find.none"));
      addCases(found.matches.map((m) => ({ id: m.person_id, name: m.name || "" })));
    }
    $("sources-query").value = "";
  } catch (err) {
    $("sources-error").textContent = errorText(err);
  }
}

function pasteIds() {
  const ids = $("sources-paste").value.split(/[^\d]+/).filter(Boolean).map(Number);
  addCases(ids.map((id) => ({ id, name: "" })));
  $("sources-paste").value = "";
}

function requestBody() {
  if (cases.size < 2) throw new Error(t("sources.need"));
  const [since, until] = window2("sources-since", "sources-until");
  return {
    person_ids: [...cases.keys()], since, until,
    min_cases: Number($("sources-min-cases").value || 2),
    min_overlap_minutes: Number($("sources-min").value || 15),
    reason: $("sources-reason").value.trim(),
  };
}

async function runSources(ev) {
  ev.preventDefault();
  $("sources-error").textContent = "";
  clear();
  try {
    const body = requestBody();
    $("sources-summary").textContent = t("sources.running");
    const data = await (await api("/v1/trace/sources", { method: "POST", json: body })).json();
    view.body = body;
    view.flagged = new Map();
    for (const [id, name] of Object.entries(data.case_names || {})) cases.set(Number(id), name);
    renderCases();
    drawn("sources", render, data);
  } catch (err) {
    clear();
    $("sources-error").textContent = errorText(err);
  }
}

function clear() {
  view.last = null;
  forget("sources");
  $("sources-summary").textContent = "";
  $("sources-timeline").replaceChildren();
  fillTable($("sources-venues-table"), []);
  fillTable($("sources-people-table"), []);
  $("sources-details").textContent = "";
}

function render(data) {
  view.last = data;
  rememberVenues(data.venue_names);
  let summary = t("sources.summary", { venues: data.common_venues.length, sources: data.possible_sources.length,
    cases: data.cases.length, stays: data.index_stays });
  if (data.cases_without_stays.length) summary += t("sources.without", { ids: data.cases_without_stays.join(", ") });
  $("sources-summary").textContent = summary;
  const colour = new Map(data.cases.map((id, i) => [id, PALETTE[i % PALETTE.length]]));
  const box = $("sources-timeline");
  box.replaceChildren();
  if (data.common_venues.length) {
    const legend = el("div", { class: "case-legend" }, ...data.cases.filter((c) => data.common_venues.some((v) => v.cases.includes(c)))
      .map((c) => { const swatch = el("i", {}); swatch.style.background = colour.get(c); return el("span", { "data-case": String(c) }, swatch, personText(c, (data.case_names || {})[c])); }));
    box.append(timeline(data, colour), legend, el("p", { class: "note" }, t("sources.legend")));
  }
  const venueRows = data.common_venues.map((v) => venueRow(v, data));
  if (!venueRows.length) venueRows.push(el("tr", {}, el("td", { colSpan: 8, class: "note" }, t("sources.novenues", { n: data.min_cases }))));
  fillTable($("sources-venues-table"), venueRows);
  const names = data.case_names || {};
  const peopleRows = data.possible_sources.map((s) => el("tr", { "data-person-id": String(s.person_id) },
    el("td", {}, s.person_id), el("td", {}, s.name || ""), el("td", {}, s.cases.length),
    el("td", { class: "case-list" }, s.cases.map((c) => personText(c, names[c])).join(", ")),
    el("td", {}, (s.overlap_seconds / 60).toFixed(1)), el("td", {}, localTime(s.first_contact_at)),
    el("td", {}, venuesText(s.venue_ids)), el("td", {}, phoneButton(s.person_id, "sources-details", "sources-reason"))));
  if (!peopleRows.length) peopleRows.push(el("tr", {}, el("td", { colSpan: 8, class: "note" }, t("sources.nopeople", { n: data.min_cases }))));
  fillTable($("sources-people-table"), peopleRows);
}

// The exposure window of a common venue: from the first case's arrival to the last case's departure.
function windowOf(v) {
  const ends = v.stays.map((s) => Date.parse(s.end_at));
  return [Date.parse(v.first_at), Math.max(...ends, Date.parse(v.last_at) + 60000)];
}

function venueRow(v, data) {
  const [since, until] = windowOf(v);
  const done = view.flagged.get(v.venue_id);
  const action = done
    ? el("span", { class: "flagged" }, t("sources.flagged", { site: done }))
    : el("button", { type: "button", class: "small", "data-flag-venue": String(v.venue_id),
      onclick: (ev) => flagVenue(ev.target, v, since, until) }, t("sources.flag"));
  return el("tr", { "data-venue-id": String(v.venue_id) },
    el("td", {}, venueLabel(v.venue_id)), el("td", {}, v.cases.length),
    el("td", { class: "case-list" }, v.cases.map((c) => personText(c, (data.case_names || {})[c])).join(", ")),
    el("td", {}, (v.together_seconds / 60).toFixed(1)), el("td", {}, localTime(v.first_at)),
    el("td", {}, localTime(v.last_at)),
    el("td", { class: "window", "data-since": new Date(since).toISOString(), "data-until": new Date(until).toISOString() },
      t("sources.window", { from: localTime(new Date(since).toISOString()), to: localTime(new Date(until).toISOString()) })),
    el("td", {}, action));
}

async function flagVenue(button, v, since, until) {
  $("sources-error").textContent = "";
  button.disabled = true;
  try {
    const site = await flag({
      venue_id: v.venue_id, since: new Date(since).toISOString(), until: new Date(until).toISOString(),
      level: $("sources-level").value, reason: view.body ? view.body.reason : $("sources-reason").value.trim(),
    });
    view.flagged.set(v.venue_id, site.site_id);
    drawn("sources", render, view.last);
  } catch (err) {
    button.disabled = false;
    $("sources-error").textContent = errorText(err);
  }
}

// One lane per common venue, in the answer's order; in a lane one thin row per case with a mark for each of
// the case's stays there (all in the case's colour), so the marks of a lane are the lane's cases.
function timeline(data, colour) {
  const venues = data.common_venues;
  const all = venues.flatMap((v) => v.stays);
  let t0 = Math.min(...all.map((s) => Date.parse(s.at))), t1 = Math.max(...all.map((s) => Date.parse(s.end_at)));
  const pad = Math.max((t1 - t0) * 0.02, 15 * 60000);
  t0 -= pad; t1 += pad;
  const width = Math.max(360, Math.round($("sources-timeline").clientWidth || 1000));
  const left = Math.min(220, Math.round(width * 0.25)), right = 16, mark = 8, gap = 3, top = 6, axis = 30;
  const x = (ms) => left + ((ms - t0) / (t1 - t0)) * (width - left - right);
  let y = top;
  const lanes = venues.map((v) => { const h = v.cases.length * (mark + gap) + 10; const lane = { v, y, h }; y += h; return lane; });
  const root = svg("svg", { viewBox: `0 0 ${width} ${y + axis}`, width: "100%", role: "img", id: "sources-svg" });
  lanes.forEach(({ v, y: ly, h }, i) => {
    const g = svg("g", { class: "venue-lane", "data-venue-id": String(v.venue_id) });
    g.append(svg("rect", { x: left, y: ly, width: width - left - right, height: h - 2, fill: i % 2 ? "#f6f8fa" : "#eef2f6" }));
    const name = state.venueNames.get(v.venue_id) || String(v.venue_id);
    const room = Math.max(6, Math.floor((left - 12) / 12));
    const label = svg("text", { x: left - 8, y: ly + Math.min(h / 2 + 4, 16), "text-anchor": "end", class: "lane" },
      name.length > room ? name.slice(0, room - 1) + "…" : name);
    label.append(svg("title", {}, `${name} (${v.venue_id})`));
    g.append(label);
    v.cases.forEach((c, row) => {
      const m = svg("g", { class: "case-mark", "data-person-id": String(c) });
      for (const s of v.stays.filter((st) => st.person_id === c)) {
        const a = x(Date.parse(s.at)), b = Math.max(x(Date.parse(s.end_at)), a + 4);
        const rect = svg("rect", { x: a, y: ly + 5 + row * (mark + gap), width: b - a, height: mark, rx: 2, fill: colour.get(c) });
        rect.append(svg("title", {}, `${personText(c, (data.case_names || {})[c])}: ${localTime(s.at)} – ${localTime(s.end_at)}`));
        m.append(rect);
      }
      g.append(m);
    });
    root.append(g);
  });
  const ticks = Math.max(1, Math.min(6, Math.floor((width - left - right) / 120)));
  for (let k = 0; k <= ticks; k++) {
    const ms = t0 + ((t1 - t0) * k) / ticks, px = x(ms);
    root.append(svg("line", { x1: px, y1: top, x2: px, y2: y + 2, stroke: "#c8d0d9", "stroke-dasharray": "2 3" }));
    root.append(svg("text", { x: px, y: y + 18, "text-anchor": k === 0 ? "start" : k === ticks ? "end" : "middle" },
      localTime(new Date(ms).toISOString()).slice(5)));
  }
  return root;
}

export function startSources() {
  const now = Date.now();
  if (!$("sources-since").value) $("sources-since").value = msToPicker(now - 14 * 86400000);
  if (!$("sources-until").value) $("sources-until").value = msToPicker(now + 3600000);
  renderCases();
}

export function wireSources() {
  $("sources-add-form").addEventListener("submit", addCase);
  $("sources-paste-go").addEventListener("click", pasteIds);
  $("sources-clear").addEventListener("click", () => { cases.clear(); renderCases(); });
  $("sources-form").addEventListener("submit", runSources);
  $("sources-csv").addEventListener("click", () => download("/v1/trace/sources?format=csv", requestBody, "sources.csv", "sources-error"));
}
