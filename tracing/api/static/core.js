// What every view of the console shares: state, DOM helpers, local time, API calls, errors said plainly,
// and the names shown for ids and codes (venues, districts, streets, communities; the code on hover).
// Everything is rendered with textContent / SVG attributes (never innerHTML with data).
import { t } from "./i18n.js";

export const SVG_NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#1f6feb", "#d97706", "#059669", "#b42318", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f",
  "#92400e", "#475569"];
export const state = {
  key: "", who: null, view: "", venueNames: new Map(), regions: new Map(), can: { tracer: false, analyst: false },
};

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-") || k.startsWith("aria-")) node.setAttribute(k, v);
    else if (k === "onclick") node.addEventListener("click", v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

export function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

export function fillTable(table, rows) {
  table.querySelector("tbody").replaceChildren(...rows);
}

// --- re-rendering: every view keeps what it last drew, so a change of language redraws it ---------------------

const redraws = new Map();

/** Draw with ``fn(data)`` now and again whenever the language changes (``name`` keeps the latest data). */
export function drawn(name, fn, data) {
  redraws.set(name, () => fn(data));
  fn(data);
}

export function forget(name) {
  redraws.delete(name);
}

export function redrawAll() {
  for (const fn of redraws.values()) fn();
}

// --- time: every instant on the wire is UTC; the page shows and takes the configured zone -------------

export function zone() { return (state.who && state.who.tz) || "UTC"; }

export function zoneOffsetMs(ms) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone(), hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(ms));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const wall = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return wall - Math.floor(ms / 1000) * 1000;
}

function offsetLabel(ms) {
  const minutes = Math.round(zoneOffsetMs(ms) / 60000), sign = minutes < 0 ? "-" : "+", abs = Math.abs(minutes);
  return `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

export function showZone() {
  const label = `${t("zone")}: ${zone()} (${offsetLabel(Date.now())})`;
  for (const node of document.querySelectorAll(".tz")) node.textContent = label;
}

// "YYYY-MM-DDTHH:MM" of a datetime-local picker, read as wall time in the zone -> RFC 3339 UTC
export function pickerToIso(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || "");
  if (!m) throw new Error(t("err.date"));
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  let ms = wall - zoneOffsetMs(wall);
  ms = wall - zoneOffsetMs(ms);
  return new Date(ms).toISOString();
}

export function msToPicker(ms) {
  return new Date(ms + zoneOffsetMs(ms)).toISOString().slice(0, 16);
}

export function window2(sinceId, untilId) {
  const since = pickerToIso($(sinceId).value), until = pickerToIso($(untilId).value);
  if (Date.parse(since) >= Date.parse(until)) throw new Error(t("err.order"));
  return [since, until];
}

export function localTime(iso) {
  if (!iso) return "";
  try {
    return new Intl.DateTimeFormat("sv-SE", {
      timeZone: zone(), year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    }).format(new Date(iso));
  } catch (e) {
    return iso;
  }
}

// --- the API --------------------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; this.detail = detail; }
}

export async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  opts.headers = Object.assign({ Authorization: "Bearer " + state.key }, opts.headers);
  if (opts.json !== undefined) {
    opts.body = JSON.stringify(opts.json);
    opts.headers["Content-Type"] = "application/json";
    delete opts.json;
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, t("err.network"));
  }
  if (!resp.ok) {
    let detail = resp.status + " " + resp.statusText;
    try { const body = await resp.json(); detail = body.detail || detail; } catch (e) { /* not JSON */ }
    throw new ApiError(resp.status, detail);
  }
  return resp;
}

/** What an error means, in the page's language: a refusal of the key is said plainly, never as server text. */
export function errorText(err) {
  if (!(err instanceof ApiError)) return err.message;
  if (err.status === 0) return t("err.network");
  if (err.status === 401 || err.status === 403 || err.status === 429 || err.status === 503) return t(`err.${err.status}`);
  if (err.status === 404) return t("err.404", { detail: err.detail });
  return t("err.other", { status: err.status, detail: err.detail });
}

// --- names for ids and codes -------------------------------------------------------------------------------

export function rememberVenues(names) {
  for (const [id, name] of Object.entries(names || {})) if (name) state.venueNames.set(Number(id), name);
}

export function venueLabel(id) {
  const name = state.venueNames.get(Number(id));
  return name ? `${name} (${id})` : String(id);
}

export function venuesText(ids) {
  return ids.map(venueLabel).join(", ");
}

export async function loadRegions() {
  try {
    const data = await (await api("/v1/regions")).json();
    state.regions = new Map(Object.entries(data.regions));
  } catch (err) {
    state.regions = new Map();  // names are a courtesy: the codes still show
  }
}

/** The name of a district, street or community code (the code itself when it has none). */
export function regionName(code) {
  return (code && state.regions.get(code)) || code || "";
}

/** A table cell with a region's name, its code on hover (``title``) and in ``data-code``. */
export function regionCell(code) {
  const cell = el("td", { class: "region", "data-code": code || "" }, regionName(code));
  if (code) cell.title = code;
  return cell;
}

export function personText(id, name) {
  return name ? `${name} (${id})` : String(id ?? "");
}
