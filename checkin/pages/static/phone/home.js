// The resident's home: their health code and their family's, guardian links to confirm, and what
// the offline screen remembers (the last colour, the venues seen).
import { state } from "./state.js";
import { ApiError, api, describe } from "./api.js";
import { cachedCompanions, renderCompanions } from "./companions.js";
import { LAST_KEY, MAX_VENUES, VENUES_KEY, cfg, home } from "./config.js";
import { $, confirmTap, item, showMessage } from "./dom.js";
import { fmt, t } from "./i18n.js";
import { statusText } from "./result.js";
import { loadStays, renderStays, saveStays } from "./stays.js";
import { forgetResident, storeGet, storeSet } from "./storage.js";
import { showRegister } from "./views.js";
import { M } from "./words.js";

// ---- the health code (GET /v1/residents/me): the resident's and their family's -------------------------
let homeData = null;     // the last answer for this resident, or {error: true}
export function loadHome() {
  if (!state.resident) return Promise.resolve();
  const owner = state.resident;
  const epoch = state.staysEpoch;
  return api("GET", "/v1/residents/me", undefined, owner.token)
    .then(function (data) {
      if (state.resident !== owner || !data) return;
      homeData = data;
      rememberColour(data.status, data.evaluated_at);
      if (epoch === state.staysEpoch) syncStays(data.open_stay);
      if (data.pending_guardians > 0) loadGuardians(); else pendingGuardians = [];
      if (state.view === "view-ready") {
        renderCode();
        renderFamily();
        renderGuardians();
        if (!home) renderCompanions(cachedCompanions());
      }
    })
    .catch(function (err) {
      if (err instanceof ApiError && err.status === 401) {
        forgetResident();
        showRegister(describe(err, "home"));
        return;
      }
      if (!homeData) homeData = { error: true };
      if (state.view === "view-ready") renderCode();
    });
}
/** The open stay as the server knows it (one place at a time: at most one) replaces the kept one. */
function syncStays(open) {
  const kept = loadStays();
  const next = open ? [{
    checkin_id: open.checkin_id, owner: String(state.resident.person_id), venue_id: String(open.venue_id),
    venue_name: open.venue_name, at: open.at, ends_at: open.ends_at,
  }] : [];
  const same = kept.length === next.length && (!next.length ||
    (kept[0].checkin_id === next[0].checkin_id && kept[0].ends_at === next[0].ends_at));
  if (same) return;
  saveStays(next);
  if (state.view === "view-ready") renderStays();
}
function ownData() {
  return homeData && !homeData.error ? homeData : null;
}
function codeReason(reason) {
  return M["code.reason." + reason] ? t("code.reason." + reason) : reason;
}
export function renderCode() {
  $("my-code").hidden = !state.resident;
  $("my-code").classList.toggle("compact", !home);
  const d = ownData();
  $("code-panel").setAttribute("data-status", d && M["status." + d.status] ? d.status : "");
  $("code-name").textContent = d ? d.name_masked : "";
  $("code-colour").textContent = d ? statusText(d.status) : homeData && homeData.error ? t("code.down") : t("code.loading");
  const reason = d && d.reason ? t("code.reason", { reason: codeReason(d.reason) }) : "";
  $("code-reason").textContent = reason;
  $("code-reason").hidden = !reason;
  const since = d && d.since ? t("code.since", { at: fmt("short", d.since) }) : "";
  $("code-since").textContent = since;
  $("code-since").hidden = !since;
  $("code-test").textContent = d ? (d.last_negative_test_at
    ? t("code.test", { at: fmt("short", d.last_negative_test_at) }) : t("code.test_none")) : "";
  $("code-test").hidden = !d;
  $("home-pass").hidden = !home;
}
export function dependantOf(personId) {
  const d = ownData();
  const list = (d && d.dependants) || [];
  for (let i = 0; i < list.length; i++) if (String(list[i].person_id) === String(personId)) return list[i];
  return null;
}
export function renderFamily() {
  const d = ownData();
  const list = (home && d && d.dependants) || [];
  const ul = $("family-list");
  while (ul.firstChild) ul.removeChild(ul.firstChild);
  list.forEach(function (p) {
    const li = item("li", "member");
    li.setAttribute("data-person-id", String(p.person_id));
    li.setAttribute("data-status", M["status." + p.status] ? p.status : "");
    const chip = item("div", "f-chip");
    chip.setAttribute("data-status", M["status." + p.status] ? p.status : "");
    chip.appendChild(item("span", "f-colour", statusText(p.status)));
    li.appendChild(chip);
    const who = item("div", "f-who");
    who.appendChild(item("div", "f-name", p.name_masked || "*"));
    if (p.reason) who.appendChild(item("div", "f-reason", t("code.reason", { reason: codeReason(p.reason) })));
    if (p.since) who.appendChild(item("div", "f-since", t("code.since", { at: fmt("short", p.since) })));
    who.appendChild(item("div", "f-test", p.last_negative_test_at
      ? t("code.test", { at: fmt("short", p.last_negative_test_at) }) : t("code.test_none")));
    if (p.open_stay) who.appendChild(item("div", "f-stay", t("family.here", { venue: p.open_stay.venue_name })));
    if (p.unread_notices) who.appendChild(item("div", "f-unread", t("family.unread", { n: p.unread_notices })));
    li.appendChild(who);
    ul.appendChild(li);
  });
  $("family").hidden = list.length === 0;
}

// ---- guardian links waiting for this resident's confirmation (after taking over their record) ---------
let pendingGuardians = [];
function loadGuardians() {
  if (!state.resident) return Promise.resolve();
  const owner = state.resident;
  return api("GET", "/v1/residents/me/guardians", undefined, owner.token)
    .then(function (list) {
      if (state.resident !== owner || !Array.isArray(list)) return;
      pendingGuardians = list.filter(function (g) { return g.pending; });
      if (state.view === "view-ready") renderGuardians();
    })
    .catch(function () { /* shown again on the next load */ });
}
export function renderGuardians() {
  const list = home ? pendingGuardians : [];
  const ul = $("guardian-list");
  while (ul.firstChild) ul.removeChild(ul.firstChild);
  list.forEach(function (g) {
    const li = item("li", "guardian");
    li.setAttribute("data-person-id", String(g.person_id));
    li.appendChild(item("div", "g-name", t("guardian.pending", { name: g.name_masked || "*" })));
    const buttons = item("div", "g-buttons");
    const yes = item("button", "btn primary g-confirm", t("guardian.confirm"));
    yes.type = "button";
    yes.addEventListener("click", function () { answerGuardian(g, true, yes); });
    const no = item("button", "btn secondary g-refuse", t("guardian.refuse"));
    no.type = "button";
    no.addEventListener("click", function () {
      confirmTap(no, t("guardian.refuse_confirm", { name: g.name_masked || "" }), function () {
        answerGuardian(g, false, no);
      });
    });
    buttons.appendChild(yes);
    buttons.appendChild(no);
    li.appendChild(buttons);
    ul.appendChild(li);
  });
  $("guardians").hidden = list.length === 0;
}
function answerGuardian(g, allow, button) {
  if (!state.resident) return showRegister();
  button.disabled = true;
  const path = "/v1/residents/me/guardians/" + encodeURIComponent(String(g.person_id));
  const call = allow ? api("POST", path + "/confirm", {}, state.resident.token) : api("DELETE", path, undefined, state.resident.token);
  call
    .catch(function (err) {
      if (err instanceof ApiError && err.status === 404) return null;  // ended meanwhile
      throw err;
    })
    .then(function () {
      pendingGuardians = pendingGuardians.filter(function (x) { return x.person_id !== g.person_id; });
      renderGuardians();
      showMessage(t(allow ? "guardian.confirmed" : "guardian.refused", { name: g.name_masked || "" }), "info");
      loadHome();
    })
    .catch(function (err) {
      button.disabled = false;
      showMessage(describe(err, "guardian"), "error");
    });
}

// ---- what the phone remembers for the offline screen: the last colour, the venues seen -------------------
export function rememberColour(status, at) {
  if (!state.resident || !M["status." + status] || !at) return;
  storeSet(LAST_KEY, { owner: String(state.resident.person_id), status: status, at: at }, 30 * 86400);
}
export function lastColour() {
  const c = storeGet(LAST_KEY);
  return c && state.resident && String(c.owner) === String(state.resident.person_id) && M["status." + c.status] ? c : null;
}
export function rememberVenue() {
  if (!cfg.venueId || !cfg.venueName) return;
  let all = storeGet(VENUES_KEY);
  if (!all || typeof all !== "object" || Array.isArray(all)) all = {};
  all[cfg.venueId] = { name: cfg.venueName, dwell: cfg.dwellMinutes, test_hours: cfg.testHours, seen: Date.now() };
  const ids = Object.keys(all).sort(function (a, b) { return (all[b].seen || 0) - (all[a].seen || 0); });
  ids.slice(MAX_VENUES).forEach(function (id) { delete all[id]; });
  storeSet(VENUES_KEY, all, 365 * 86400);
}
export function rememberedVenue(venueId) {
  const all = storeGet(VENUES_KEY);
  const v = all && typeof all === "object" ? all[venueId] : null;
  return v && typeof v.name === "string" ? v : null;
}
